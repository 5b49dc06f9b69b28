"""UCS names: the shipped category list, CatID_FXName_CreatorID_SourceID, a CatID for every
shipped foley preset, and the project settings that switch UCS naming on."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import pytest

from host.config.presets import BUILTIN_DIR, Preset, check_presets, load_preset_file, preset_library
from host.config.project import load_cues, load_project
from host.config.ucs import categories, cat_id_problem, lookup, suggest, ucs_version
from host.errors import InputError
from host.jobs.build import job_from_cue
from host.output.ucs import fx_name, parse_ucs_name, ucs_name

# --------------------------------------------------------------------------- the list


def test_the_shipped_list_is_ucs_8_2_1_complete():
    raw = json.loads(resources.files("host.config").joinpath("data", "ucs-8.2.1.json").read_text(encoding="utf-8"))
    assert raw["ucs_version"] == ucs_version() == "8.2.1"
    assert "ucs-community" in raw["source"]  # where it came from is part of the data
    cats = categories()
    assert len(raw["categories"]) == len(cats) == 753  # no CatID twice
    assert len({c.category for c in cats.values()}) == 82
    assert all(re.fullmatch(r"[A-Za-z0-9]+", cat_id) for cat_id in cats)
    door = lookup("DOORWood")
    assert (door.category, door.subcategory, door.full) == ("DOORS", "WOOD", "DOORS-WOOD")
    assert lookup("AIRBlow").subcategory == "BLOW"  # the first row, which some transcriptions lose
    assert lookup("WHSH").category == "SWOOSHES" and lookup("THUN").full == "WEATHER-THUNDER"


@pytest.mark.parametrize(
    "given, expected",
    [("doorwood", ["DOORWood"]), ("DOORS-WOOD", ["DOORWood"]), ("doors / wood", ["DOORWood"]), ("FEETHmm", ["FEETHmn"])],
)
def test_suggestions_for_a_near_miss(given, expected):
    assert suggest(given)[: len(expected)] == expected
    assert f"did you mean '{expected[0]}'" in cat_id_problem(given)


def test_catids_are_case_exact():
    assert cat_id_problem("DOORWood") is None
    assert "did you mean 'DOORWood'" in cat_id_problem("DoorWood")
    assert "not a CatID" in cat_id_problem("Qwertyuiop")


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    "cue, fx",
    [
        ("door-creak-slow", "Door Creak Slow"),
        ("footsteps_hall.v2", "Footsteps Hall V2"),
        ("  rain   on--glass ", "Rain On Glass"),
        ("ui-confirm-MKH416", "Ui Confirm MKH416"),
        ("Night Ambience", "Night Ambience"),
        ("café/terrasse:12", "Café Terrasse 12"),
    ],
)
def test_fx_name_is_readable_and_file_safe(cue, fx):
    assert fx_name(cue) == fx
    assert not re.search(r"[_\-/\\:.]", fx_name(cue))


def test_ucs_name_has_four_blocks_and_parses_back():
    name = ucs_name("DOORWood", "creak-open-slow", "AH", "Demo")
    assert name == "DOORWood_Creak Open Slow_AH_Demo"
    take = ucs_name("DOORWood", "creak-open-slow", "AH", "Demo", user_data="t01")
    assert take == "DOORWood_Creak Open Slow_AH_Demo_t01"
    parts = parse_ucs_name(take)
    assert (parts.cat_id, parts.fx_name, parts.creator_id, parts.source_id, parts.user_data) == (
        "DOORWood", "Creak Open Slow", "AH", "Demo", "t01",
    )
    assert parse_ucs_name("DOORWood-INT_Creak_AH_Demo").cat_id == "DOORWood"  # a UserCategory tail
    assert parse_ucs_name("door-slam_t01") is None and parse_ucs_name("NOTACAT_a_b_c") is None


@pytest.mark.parametrize(
    "args, field, reason",
    [
        (("DOORWod", "x", "AH", "Demo"), "UCS CatID", "did you mean 'DOORWood'"),
        (("DOORWood", "x", "A_H", "Demo"), "UCS CreatorID", "must not contain '_'"),
        (("DOORWood", "x", "AH", "My/Show"), "UCS SourceID", "may hold only letters"),
        (("DOORWood", "x", "AH", ""), "UCS SourceID", "non-empty"),
        (("DOORWood", "x", "AH", "S" * 33), "UCS SourceID", "at most 32"),
        (("DOORWood", "--", "AH", "Demo"), "UCS FXName", "no letters or digits"),
    ],
)
def test_bad_fields_get_one_clear_error(args, field, reason):
    with pytest.raises(InputError) as err:
        ucs_name(*args)
    assert err.value.where == field and reason in err.value.reason


def test_user_data_follows_the_id_rules():
    with pytest.raises(InputError, match="UCS UserData"):
        ucs_name("DOORWood", "x", "AH", "Demo", user_data="t_01")


# --------------------------------------------------------------------------- presets


FOLEY = sorted(p for p in BUILTIN_DIR.glob("*.toml") if load_preset_file(p).kind == "foley")


@pytest.mark.parametrize("path", FOLEY, ids=lambda p: p.stem)
def test_every_shipped_foley_preset_has_a_valid_catid(path: Path):
    preset = load_preset_file(path)
    assert preset.ucs is not None and cat_id_problem(preset.ucs) is None
    name = ucs_name(preset.ucs, path.stem, "AH", "Demo", user_data="t01")
    assert name.count("_") == 4 and name.startswith(preset.ucs + "_")
    assert re.fullmatch(r"[A-Za-z0-9 _]+", name)


def test_shipped_catids_fit_the_sound():
    library, _ = preset_library()
    ucs = {name: e.preset.ucs for name, e in library.items() if e.preset.kind == "foley"}
    assert len(ucs) >= 14
    cats = {name: lookup(cat).category for name, cat in ucs.items()}
    assert cats["door-wood-creak"] == "DOORS" and cats["footsteps-gravel"] == "FOOTSTEPS"
    assert cats["rain-on-window"] == "RAIN" and cats["wind-howl"] == "WIND" and cats["glass-break"] == "GLASS"
    assert cats["thunder-distant"] == "WEATHER" and cats["ui-click"] == "USER INTERFACE"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_a_preset_with_an_unknown_catid_is_one_clear_error(tmp_path):
    path = write(tmp_path / "creak.toml", 'kind = "foley"\nprompt = "a door"\nucs = "DoorWood"\n')
    [err] = check_presets(path)
    assert err.where.endswith("creak.toml ucs")
    assert err.reason == "'DoorWood' is not a CatID in the UCS 8.2.1 list; did you mean 'DOORWood'?"
    [err] = check_presets(write(tmp_path / "n.toml", 'kind = "foley"\nprompt = "a"\nucs = 3\n'))
    assert err.where.endswith("n.toml ucs") and "UCS CatID" in err.reason


def test_a_cue_may_set_its_own_catid(tmp_path):
    library, _ = preset_library()
    cues = '[[cue]]\nname = "door-slam"\npreset = "door-wood-creak"\nucs = "DOORWood"\n'
    cues += '[[cue]]\nname = "knock"\npreset = "door-wood-creak"\nucs = "DOORKnok"\n'
    write(tmp_path / "cues.toml", cues)
    project = load_project(tmp_path)
    loaded, errors = load_cues(project, library)
    assert [c.preset.ucs for c in loaded] == ["DOORWood"]
    [err] = errors
    assert err.where.endswith('cues.toml cue "knock" (cue[1]).ucs') and "did you mean 'DOORKnck'" in err.reason


def test_a_catid_does_not_change_what_is_rendered(tmp_path):
    """The job key names what determines the audio: a CatID names the file, not the sound, so
    adding the field (to shipped presets, on upgrade) or changing it renders nothing again."""
    library, _ = preset_library()
    write(tmp_path / "cues.toml", '[[cue]]\nname = "door-slam"\npreset = "door-wood-creak"\n')
    project = load_project(tmp_path)
    [cue], _ = load_cues(project, library)
    job = job_from_cue(project, cue)
    without = job.model_copy(update={"preset": cue.preset.with_overrides(ucs=None)})
    other = job.model_copy(update={"preset": cue.preset.with_overrides(ucs="DOORWood")})
    assert job.preset.ucs == "DOORCreak"
    assert job.key("tiny", "r1", None) == without.key("tiny", "r1", None) == other.key("tiny", "r1", None)
    changed = job.model_copy(update={"preset": cue.preset.with_overrides(steps=cue.preset.steps + 1)})
    assert changed.key("tiny", "r1", None) != job.key("tiny", "r1", None)


def test_preset_ucs_is_optional():
    assert Preset(kind="foley").ucs is None


# --------------------------------------------------------------------------- project settings


def test_ucs_naming_is_opt_in(tmp_path):
    settings = load_project(tmp_path).settings
    assert (settings.naming, settings.creator_id, settings.source_id) == ("default", None, None)
    write(tmp_path / "project.toml", 'naming = "ucs"\ncreator_id = "AH"\nsource_id = "Demo Show"\n')
    settings = load_project(tmp_path).settings
    assert (settings.naming, settings.creator_id, settings.source_id) == ("ucs", "AH", "Demo Show")


@pytest.mark.parametrize(
    "text, field, reason",
    [
        ('naming = "ucs"\nsource_id = "Demo"\n', "creator_id", 'required when naming = "ucs"'),
        ('naming = "ucs"\ncreator_id = "AH"\n', "source_id", 'required when naming = "ucs"'),
        ('naming = "ucs"\ncreator_id = "A_H"\nsource_id = "Demo"\n', "creator_id", "must not contain '_'"),
        ('creator_id = "AH"\nsource_id = "a/b"\n', "source_id", "may hold only letters"),
        ('naming = "UCS"\n', "naming", "must be 'default' or 'ucs'"),
        ('naming = "ucs"\ncreator_id = 7\nsource_id = "Demo"\n', "creator_id", "non-empty text"),
    ],
)
def test_bad_naming_settings_name_the_field(tmp_path, text, field, reason):
    write(tmp_path / "project.toml", text)
    with pytest.raises(InputError) as err:
        load_project(tmp_path)
    assert err.value.where.endswith(f"project.toml {field}") and reason in err.value.reason
    assert "\n" not in str(err.value)
