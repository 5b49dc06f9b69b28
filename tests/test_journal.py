"""The journal and the daemon's settings, without a running daemon."""

from __future__ import annotations

from pathlib import Path

import pytest

from host.config.presets import Preset
from host.config.schema import Delivery
from host.daemon.config import load_config
from host.errors import InputError
from host.jobs.job import Job
from host.jobs.journal import PRIORITY_FOLDER, PRIORITY_OSC, Journal, QueueFull


def job(name: str, duration: float = 1.0, takes: int = 1, kind: str = "foley") -> Job:
    return Job(
        kind=kind, name=name, project="/tmp/p", preset_name="p", preset_hash="h",
        preset=Preset(kind=kind, prompt=name, duration=duration, takes=takes, steps=3), delivery=Delivery(),
        input="/tmp/p/restyle/x.wav" if kind != "foley" else None,
    )


@pytest.fixture
def journal(tmp_path):
    j = Journal(tmp_path / "journal.sqlite")
    yield j
    j.close()


def test_accepted_jobs_survive_a_reopen(tmp_path):
    path = tmp_path / "journal.sqlite"
    first = Journal(path)
    job_id, new = first.add(job("rain"), PRIORITY_OSC, tag="t1", reply_to=("127.0.0.1", 9011))
    first.close()
    again = Journal(path)
    entry = again.get(job_id)
    again.close()
    assert new and entry.state == "queued" and entry.job.name == "rain" and entry.tag == "t1" and entry.reply_to == ("127.0.0.1", 9011)


def test_requests_from_a_daw_run_before_folder_work(journal):
    folder_id, _ = journal.add(job("from-folder"), PRIORITY_FOLDER)
    osc_id, _ = journal.add(job("from-osc", duration=2.0), PRIORITY_OSC)
    assert [e.id for e in journal.take_batch(1)] == [osc_id]
    assert [e.id for e in journal.take_batch(1)] == [folder_id]


def test_compatible_foley_jobs_are_claimed_together_up_to_the_batch_size(journal):
    ids = [journal.add(job(f"j{k}", takes=2), PRIORITY_OSC)[0] for k in range(5)]
    other, _ = journal.add(job("longer", duration=3.0), PRIORITY_OSC)
    batch = journal.take_batch(batch_size=6)  # 3 jobs of 2 takes fit
    assert [e.id for e in batch] == ids[:3]
    assert all(journal.get(i).state == "running" for i in ids[:3])
    assert [e.id for e in journal.take_batch(6)] == ids[3:]
    assert [e.id for e in journal.take_batch(6)] == [other]
    assert journal.take_batch(6) == []


def test_the_queue_is_bounded(journal):
    journal.add(job("a"), PRIORITY_OSC, bound=2)
    journal.add(job("b"), PRIORITY_OSC, bound=2)
    with pytest.raises(QueueFull, match="queue full"):
        journal.add(job("c"), PRIORITY_OSC, bound=2)
    assert journal.counts()["queued"] == 2


def test_the_same_open_job_is_not_queued_twice(journal):
    first, new1 = journal.add(job("a"), PRIORITY_FOLDER, dedupe="same")
    second, new2 = journal.add(job("a"), PRIORITY_FOLDER, dedupe="same")
    assert first == second and new1 and not new2
    journal.finish(first, "done")
    third, new3 = journal.add(job("a"), PRIORITY_FOLDER, dedupe="same")  # finished jobs do not block a new request
    assert new3 and third != first


def test_recover_requeues_what_a_crash_left_running(journal):
    job_id, _ = journal.add(job("a"), PRIORITY_OSC)
    journal.take_batch(1)
    assert journal.get(job_id).state == "running"
    assert journal.recover() == ([job_id], [])
    assert journal.get(job_id).state == "queued"


def test_a_job_interrupted_twice_fails_instead_of_crashing_the_daemon_forever(tmp_path):
    """A job that kills the process (a segfaulting VST3, out of memory) is running at every crash."""
    path = tmp_path / "journal.sqlite"
    poison = Journal(path).add(job("poison"), PRIORITY_OSC)[0]
    other = Journal(path).add(job("other", duration=2.0), PRIORITY_OSC)[0]
    for attempt in (1, 2):
        j = Journal(path)
        requeued, failed = j.recover()
        claimed = [e.id for e in j.take_batch(1)]
        assert claimed == [poison]  # it goes first and "crashes" the process
        j.close()  # no finish: the process died
    j = Journal(path)
    requeued, failed = j.recover()
    assert failed == [poison] and requeued == []
    entry = j.get(poison)
    assert entry.state == "failed" and entry.error == "interrupted twice while rendering; not retried"
    assert [e.id for e in j.take_batch(1)] == [other]  # the others run
    j.close()


def test_a_clean_requeue_is_not_an_interruption(tmp_path):
    path = tmp_path / "journal.sqlite"
    j = Journal(path)
    job_id = j.add(job("a"), PRIORITY_OSC)[0]
    for _ in range(3):  # stopped by SIGTERM three times: always back in the queue
        j.take_batch(1)
        j.requeue(job_id)
    assert j.recover() == ([], []) and j.get(job_id).state == "queued"
    j.close()


def test_every_requester_of_a_merged_job_is_a_waiter_and_osc_raises_its_priority(journal):
    folder_id, _ = journal.add(job("cue"), PRIORITY_FOLDER, dedupe="same")
    other, _ = journal.add(job("osc-first", duration=2.0), PRIORITY_OSC)
    merged, new = journal.add(job("cue"), PRIORITY_OSC, tag="from-reaper", reply_to=("127.0.0.1", 9011), dedupe="same")
    again, _ = journal.add(job("cue"), PRIORITY_OSC, tag="from-live", reply_to=("127.0.0.2", 9011), dedupe="same")
    assert merged == again == folder_id and not new
    entry = journal.get(folder_id)
    assert entry.priority == PRIORITY_OSC
    assert [(w.reply_to, w.tag) for w in entry.waiters] == [(("127.0.0.1", 9011), "from-reaper"), (("127.0.0.2", 9011), "from-live")]
    assert [e.id for e in journal.take_batch(1)] == [folder_id]  # older than the other OSC job now that it is OSC work
    # a request merging into a job that is already running is a waiter too
    journal.add(job("cue"), PRIORITY_OSC, tag="late", reply_to=("127.0.0.3", 9011), dedupe="same")
    assert [w.tag for w in journal.waiters(folder_id)] == ["from-reaper", "from-live", "late"]


def test_a_whole_cue_sheet_is_queued_or_none_of_it(journal):
    journal.add(job("a"), PRIORITY_OSC, bound=4)
    journal.add(job("b"), PRIORITY_OSC, bound=4)
    with pytest.raises(QueueFull):
        journal.add_all([job("c"), job("d"), job("e")], PRIORITY_OSC, bound=4)
    assert journal.counts()["queued"] == 2
    added = journal.add_all([job("c"), job("d")], PRIORITY_OSC, bound=4)
    assert [new for _, new in added] == [True, True] and journal.counts()["queued"] == 4


def test_subscriptions_survive_a_reopen_until_they_expire(tmp_path):
    path = tmp_path / "journal.sqlite"
    j = Journal(path)
    j.subscribe("127.0.0.1", 9100, 3600)
    j.subscribe("127.0.0.1", 9101, 0.05)
    j.close()
    import time

    time.sleep(0.1)
    again = Journal(path)
    assert [(h, p) for h, p, _ in again.subscriptions()] == [("127.0.0.1", 9100)]
    again.unsubscribe("127.0.0.1", 9100)
    assert again.subscriptions() == []
    again.close()


def test_the_last_failure_of_the_same_work_is_remembered(journal):
    job_id, _ = journal.add(job("stem", kind="restyle"), PRIORITY_FOLDER, dedupe="content-1")
    journal.take_batch(1)
    journal.finish(job_id, "failed", error="not a readable audio file")
    assert journal.failed_before("content-1") == (job_id, "not a readable audio file")
    assert journal.failed_before("content-2") is None
    later, _ = journal.add(job("stem", kind="restyle"), PRIORITY_FOLDER, dedupe="content-1")
    journal.take_batch(1)
    journal.finish(later, "done")
    assert journal.failed_before("content-1") is None  # the newest attempt succeeded


def test_a_row_that_no_longer_reads_fails_with_the_reason_and_the_queue_goes_on(journal):
    bad, _ = journal.add(job("old"), PRIORITY_OSC)
    good, _ = journal.add(job("new", duration=2.0), PRIORITY_OSC)
    journal._db.execute("UPDATE jobs SET job = ? WHERE id = ?", ('{"kind": "foley", "from_an_older_version": 1}', bad))
    assert [e.id for e in journal.take_batch(1)] == [good]
    assert journal.unreadable and journal.unreadable[0][0] == bad
    state = journal._db.execute("SELECT state, error FROM jobs WHERE id = ?", (bad,)).fetchone()
    assert state[0] == "failed" and "cannot read" in state[1]


def test_progress_is_written_without_forcing_the_disk(journal):
    """Acceptance and completion sync fully; a progress figure does not wait for an fsync."""
    assert journal._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert journal._quick.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    job_id, _ = journal.add(job("a"), PRIORITY_OSC)
    journal.set_progress(job_id, 0.5)
    assert journal.get(job_id).progress == 0.5


def test_claiming_does_not_force_the_disk_and_leaves_acceptance_fully_synced(tmp_path, monkeypatch):
    """A claim commits without an fsync (it sits on the renderer's path); whatever happens in it,
    the next acceptance and completion sync fully, and the claim itself is committed."""
    journal = Journal(tmp_path / "journal.sqlite")
    statements: list[str] = []
    journal._db.set_trace_callback(statements.append)
    first, _ = journal.add(job("a"), PRIORITY_OSC)
    statements.clear()
    assert [e.id for e in journal.take_batch(1)] == [first]
    assert statements.index("PRAGMA synchronous=NORMAL") < statements.index("BEGIN IMMEDIATE") < statements.index("PRAGMA synchronous=FULL")
    assert journal._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL again
    second, _ = journal.add(job("b", duration=2.0), PRIORITY_OSC)
    monkeypatch.setattr(journal, "_readable", lambda row: (_ for _ in ()).throw(RuntimeError("broken row")))
    with pytest.raises(RuntimeError):
        journal.take_batch(1)
    assert journal._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # restored after a failed claim too
    journal._db.set_trace_callback(None)
    journal.close()
    reopened = Journal(tmp_path / "journal.sqlite")
    assert reopened.get(first).state == "running" and reopened.get(second).state == "queued"  # the claim was committed, the failed one rolled back
    reopened.close()


def test_config_errors_name_the_file_and_the_field(tmp_path):
    bad = tmp_path / "host.toml"
    bad.write_text("osc_port = 99999\n")
    with pytest.raises(InputError, match=r"host.toml osc_port: must be <= 65535"):
        load_config(bad, {})
    bad.write_text("batch_sise = 4\n")
    with pytest.raises(InputError, match=r"batch_sise: unknown field; did you mean 'batch_size'"):
        load_config(bad, {})
    bad.write_text('allow = ["not-a-network"]\n')
    with pytest.raises(InputError, match=r"allow"):
        load_config(bad, {})
    bad.write_text("osc_port = \n")
    with pytest.raises(InputError, match="invalid TOML"):
        load_config(bad, {})


def test_only_allowed_networks_are_served(tmp_path):
    cfg = tmp_path / "host.toml"
    cfg.write_text('osc_host = "0.0.0.0"\nallow = ["127.0.0.0/8", "192.168.10.0/24"]\nprojects = ["p"]\n')
    config = load_config(cfg, {"osc_port": 9999})
    assert config.osc_port == 9999  # flags win over the file
    assert config.projects == [Path(tmp_path / "p")]  # relative to the config file
    assert config.allowed("127.0.0.1") and config.allowed("192.168.10.44")
    assert not config.allowed("192.168.11.1") and not config.allowed("10.0.0.1") and not config.allowed("garbage")
