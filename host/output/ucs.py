"""File names by the Universal Category System: ``CatID_FXName_CreatorID_SourceID`` (and an
optional ``_UserData`` block, e.g. the take number, which keeps takes of one cue apart).

``DOORWood_Creak Open Slow_AH_Demo_t01.wav``: the CatID from the UCS list (exact, case
included), the FX name made readable from the cue name, who made it, for which project or
library. '_' only ever separates blocks. '-' inside the FX name would start a UCS
*VendorCategory* and right after the CatID a *UserCategory*, so cue-name hyphens become spaces.
The list and the field checks are in :mod:`host.config.ucs`.
"""

from __future__ import annotations

import re
from typing import NamedTuple, Optional

from host.config.ucs import cat_id_problem, id_problem
from host.errors import InputError

FX_MAX = 100


def fx_name(cue_name: str) -> str:
    """A readable, file-safe FX name from a cue or stem name: ``door-creak-slow`` ->
    ``Door Creak Slow``. Every run of characters that are not letters or digits ('-', '_', '.',
    '/', spaces, ...) becomes one space; each word starts upper-case (the rest is kept:
    ``MKH416`` stays). Raises ``ValueError`` if nothing readable is left."""
    words = re.split(r"[\W_]+", str(cue_name))  # any run of non-letters/digits separates words
    text = " ".join(w[:1].upper() + w[1:] for w in words if w)
    if not text:
        raise ValueError(f"no letters or digits in {cue_name!r} to make an FX name from")
    return text[:FX_MAX].rstrip()


def ucs_name(cat_id: str, fx_name_or_cue: str, creator_id: str, source_id: str, *, user_data: Optional[str] = None) -> str:
    """``CatID_FXName_CreatorID_SourceID[_UserData]`` (no extension).

    ``fx_name_or_cue`` is made readable with :func:`fx_name` (a cue name or a readable title both
    work). Raises :class:`InputError` naming the UCS field: an unknown CatID (with a suggestion),
    a creator/source id or user data with '_' or characters a file name cannot hold."""
    problem = cat_id_problem(cat_id)
    if problem:
        raise InputError("UCS CatID", problem)
    for what, value in (("CreatorID", creator_id), ("SourceID", source_id)):
        problem = id_problem(value)
        if problem:
            raise InputError(f"UCS {what}", problem)
    try:
        fx = fx_name(fx_name_or_cue)
    except ValueError as err:
        raise InputError("UCS FXName", str(err)) from None
    parts = [cat_id, fx, creator_id, source_id]
    if user_data is not None:
        problem = id_problem(user_data)
        if problem:
            raise InputError("UCS UserData", problem)
        parts.append(user_data)
    return "_".join(parts)


class UcsParts(NamedTuple):
    cat_id: str
    fx_name: str
    creator_id: str
    source_id: str
    user_data: Optional[str]


def parse_ucs_name(stem: str) -> Optional[UcsParts]:
    """The blocks of a UCS file name (without extension), or None if it is not one. A
    ``-UserCategory`` tail on the CatID is not part of the CatID."""
    parts = stem.split("_")
    if len(parts) < 4:
        return None
    cat = parts[0].split("-", 1)[0]
    if cat_id_problem(cat):
        return None
    user = "_".join(parts[4:]) if len(parts) > 4 else None
    return UcsParts(cat, parts[1], parts[2], parts[3], user)


__all__ = ["UcsParts", "fx_name", "parse_ucs_name", "ucs_name"]
