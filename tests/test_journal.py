"""The journal and the daemon's settings, without a running daemon."""

from __future__ import annotations

import re
import shutil
import sqlite3
from pathlib import Path

import pytest

from host.config.presets import Preset
from host.config.schema import Delivery
from host.daemon.config import load_config
from host.errors import InputError
from host.jobs.job import Job
from host.jobs import journal as journal_module
from host.jobs.journal import APPLICATION_ID, PRIORITY_FOLDER, PRIORITY_OSC, Journal, JournalDamaged, QueueFull, journal_problem, open_journal


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


# ---------------------------------------------------------------- a damaged journal


def journal_with_open_jobs(path: Path, queued: int = 30, done: int = 5) -> None:
    j = Journal(path)
    for k in range(done):
        j.finish(j.add(job(f"done{k}"), PRIORITY_FOLDER)[0], "done")
    for k in range(queued):
        j.add(job(f"queued{k}", duration=1.0 + k), PRIORITY_OSC)
    j.close()


def damaged_copies(tmp_path: Path) -> dict:
    """The damage seen on studio machines, each applied to a journal of 30 queued jobs."""
    source = tmp_path / "source.sqlite"
    journal_with_open_jobs(source)
    data = source.read_bytes()
    assert len(data) >= 5 * 4096
    page = 4096
    return {
        "truncated to 0 bytes": (b"", "is empty (0 bytes)", None),
        "garbage": (bytes(range(256)) * 64, "is not an SQLite database", None),
        "damaged pages": (data[: 2 * page] + b"\xff" * page + data[3 * page :], "fails SQLite's quick check", "some"),
        "cut short": (data[: len(data) - 2 * page], "fails SQLite's quick check", "some"),
    }


@pytest.mark.parametrize("case", ["truncated to 0 bytes", "garbage", "damaged pages", "cut short"])
def test_a_damaged_journal_is_refused_by_default_and_left_where_it_is(tmp_path, case):
    content, reason, readable = damaged_copies(tmp_path)[case]
    state = tmp_path / "state"
    state.mkdir()
    path = state / "journal.sqlite"
    path.write_bytes(content)
    with pytest.raises(JournalDamaged) as err:
        open_journal(path)
    line = str(err.value)
    assert "\n" not in line and reason in line and str(path) in line and 'damaged_journal = "start-fresh"' in line
    if readable is None:
        assert "no job could be read from it" in line and err.value.open_jobs is None
    else:
        assert re.search(r"\d+ open job\(s\) \(queued or running\) can still be read", line), line
    assert path.read_bytes() == content  # untouched: every later start refuses too, until someone looks
    assert all(p.name == "journal.sqlite" or p.name.endswith("-shm") or p.stat().st_size == 0 for p in state.iterdir())
    with pytest.raises(JournalDamaged):
        open_journal(path)


@pytest.mark.parametrize("case", ["truncated to 0 bytes", "garbage", "damaged pages"])
def test_start_fresh_moves_the_damaged_journal_aside_and_says_what_was_lost(tmp_path, case):
    content, reason, _ = damaged_copies(tmp_path)[case]
    state = tmp_path / "state"
    state.mkdir()
    path = state / "journal.sqlite"
    path.write_bytes(content)
    Path(str(path) + "-wal").write_bytes(b"")  # its log goes with it
    journal, notice = open_journal(path, "start-fresh")
    try:
        assert journal.counts() == {"queued": 0, "running": 0, "done": 0, "failed": 0, "cancelled": 0}
        new_id, _ = journal.add(job("after"), PRIORITY_OSC)  # and it works
    finally:
        journal.close()
    aside = [p for p in state.iterdir() if ".damaged-" in p.name]
    main_copy = [p for p in aside if re.fullmatch(r"journal\.sqlite\.damaged-\d{8}T\d{6}Z", p.name)]
    assert len(main_copy) == 1 and main_copy[0].read_bytes() == content
    assert Path(str(main_copy[0]) + "-wal").exists()
    assert "\n" not in notice and reason in notice and str(main_copy[0]) in notice and "(not in the new queue)" in notice
    if case == "damaged pages":
        assert re.search(r"\d+ open job\(s\)", notice)


def test_a_journal_interrupted_mid_write_is_sound_and_keeps_every_job(tmp_path):
    """kill -9 leaves the write-ahead log beside the journal: that is not damage."""
    live = tmp_path / "live" / "journal.sqlite"
    live.parent.mkdir()
    j = Journal(live)
    ids = [j.add(job(f"j{k}"), PRIORITY_OSC)[0] for k in range(20)]
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    for suffix in ("", "-wal"):  # copied while the connection is open, as a crash leaves them
        shutil.copyfile(str(live) + suffix, str(crashed / "journal.sqlite") + suffix)
    j.close()
    assert Path(str(crashed / "journal.sqlite") + "-wal").stat().st_size > 0
    journal, notice = open_journal(crashed / "journal.sqlite")
    try:
        assert notice is None and [e.id for e in journal.entries()] == ids
    finally:
        journal.close()


def test_another_programs_database_is_not_taken_for_a_journal(tmp_path):
    path = tmp_path / "journal.sqlite"
    db = sqlite3.connect(path)
    db.execute("PRAGMA application_id = 1234")
    db.execute("CREATE TABLE notes (text)")
    db.commit()
    db.close()
    with pytest.raises(JournalDamaged, match="another program's SQLite database"):
        open_journal(path)
    path.unlink()
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE notes (text)")
    db.commit()
    db.close()
    with pytest.raises(JournalDamaged, match="no jobs table"):
        open_journal(path)


def test_a_journal_from_before_the_stamp_is_recognised_and_stamped(tmp_path):
    path = tmp_path / "journal.sqlite"
    journal_with_open_jobs(path, queued=3, done=0)
    db = sqlite3.connect(path)
    db.execute("PRAGMA application_id = 0")  # as every journal before this change
    db.commit()
    db.close()
    journal, notice = open_journal(path)
    journal.close()
    assert notice is None
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 3
    db.close()


def test_a_new_journal_is_created_whole(tmp_path, monkeypatch):
    path = tmp_path / "state" / "journal.sqlite"
    journal, notice = open_journal(path)
    journal.close()
    assert notice is None and path.read_bytes()[:16] == b"SQLite format 3\x00"
    assert journal_problem(path) is None
    # a crash while creating it leaves no journal at all (never an empty one that would be refused)
    other = tmp_path / "other" / "journal.sqlite"

    def crash(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(journal_module.os, "rename", crash)
    with pytest.raises(KeyboardInterrupt):
        open_journal(other)
    monkeypatch.undo()
    assert not other.exists()
    journal, _ = open_journal(other)
    journal.close()


def test_a_stray_write_ahead_log_without_its_journal_is_damage(tmp_path):
    path = tmp_path / "journal.sqlite"
    Path(str(path) + "-wal").write_bytes(b"\x37\x7f\x06\x82" + bytes(60))
    with pytest.raises(JournalDamaged, match="journal is missing but journal.sqlite-wal is still there"):
        open_journal(path)


def test_the_daemon_setting_for_a_damaged_journal(tmp_path):
    assert load_config(None, {}).damaged_journal == "refuse"
    cfg = tmp_path / "host.toml"
    cfg.write_text('damaged_journal = "start-fresh"\n')
    assert load_config(cfg, {}).damaged_journal == "start-fresh"
    cfg.write_text('damaged_journal = "ignore"\n')
    with pytest.raises(InputError, match="damaged_journal"):
        load_config(cfg, {})


@pytest.mark.parametrize("content", [b"", b"not a database at all, just text\n" * 10])
def test_status_on_a_damaged_journal_says_so_in_one_line(tmp_path, capsys, content):
    from host.cli import main

    state = tmp_path / "state"
    state.mkdir()
    (state / "journal.sqlite").write_bytes(content)
    assert main(["status", "--state-dir", str(state)]) == 2
    out, err = capsys.readouterr()
    lines = [line for line in (out + err).splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: journal ") and "Traceback" not in out + err
    assert (state / "journal.sqlite").read_bytes() == content  # status never changes the journal
