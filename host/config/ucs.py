"""The Universal Category System (UCS) list, shipped with the package, and the checks on the
fields of a UCS name (``CatID_FXName_CreatorID_SourceID``).

The list is ``data/ucs-8.2.1.json`` beside this file: UCS v8.2.1, 753 CatIDs in 82 categories,
each with its Category, SubCategory and the UCS explanation of what belongs there. Its
``source`` field says where it was transcribed from. The CatID is the one part of a UCS name
that must be exactly as listed, case included: it is what every library tool sorts and parses by.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any, Optional

DATA_FILE = "ucs-8.2.1.json"
ID_MAX = 32


@dataclass(frozen=True)
class UcsCategory:
    cat_id: str  # e.g. DOORWood
    category: str  # DOORS
    subcategory: str  # WOOD
    explanation: str

    @property
    def full(self) -> str:
        """CategoryFull, as library tools build it: ``DOORS-WOOD``."""
        return f"{self.category}-{self.subcategory}"


@functools.lru_cache(maxsize=1)
def _load() -> tuple[str, dict[str, UcsCategory]]:
    raw = resources.files("host.config").joinpath("data", DATA_FILE).read_text(encoding="utf-8")
    doc = json.loads(raw)
    fields = doc["fields"]
    assert fields[:3] == ["CatID", "Category", "SubCategory"], fields
    cats = {row[0]: UcsCategory(row[0], row[1], row[2], row[3] if len(row) > 3 else "") for row in doc["categories"]}
    return str(doc["ucs_version"]), cats


def ucs_version() -> str:
    return _load()[0]


def categories() -> dict[str, UcsCategory]:
    """Every UCS category by CatID, in the list's order."""
    return _load()[1]


def lookup(cat_id: str) -> Optional[UcsCategory]:
    return categories().get(cat_id)


def suggest(value: str, n: int = 3) -> list[str]:
    """CatIDs close to ``value``: the same letters in another case first, then ``DOORS-WOOD``
    style full names, then near spellings."""
    cats = categories()
    text = value.strip()
    by_lower = {c.lower(): c for c in cats}
    if text.lower() in by_lower:
        return [by_lower[text.lower()]]
    by_full = {c.full.lower(): c.cat_id for c in cats.values()}
    key = re.sub(r"\s*[-/:]\s*", "-", text.lower())
    if key in by_full:
        return [by_full[key]]
    close = difflib.get_close_matches(text.lower(), list(by_lower), n=n, cutoff=0.6)
    return [by_lower[c] for c in close]


def cat_id_problem(value: Any) -> Optional[str]:
    """Why ``value`` is not a UCS CatID, with a suggestion, or None if it is one."""
    if not isinstance(value, str) or not value.strip():
        return f"must be a UCS CatID such as 'DOORWood', got {value!r}"
    if value in categories():
        return None
    close = suggest(value)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else " (see the UCS list: CatIDs like 'DOORWood', 'FEETHmn')"
    return f"'{value}' is not a CatID in the UCS {ucs_version()} list{hint}"


def id_problem(value: Any) -> Optional[str]:
    """Why ``value`` cannot be a UCS CreatorID / SourceID / UserData block, or None.

    Letters, digits, spaces and hyphens, at most 32 characters, starting and ending with a
    letter or digit; never '_', which separates the blocks of a UCS name."""
    if not isinstance(value, str) or not value:
        return f"must be non-empty text, got {value!r}"
    if "_" in value:
        return f"must not contain '_' (it separates the parts of a UCS name), got {value!r}"
    if len(value) > ID_MAX:
        return f"must be at most {ID_MAX} characters, got {len(value)}"
    if not re.fullmatch(r"[^\W_](?:[\w -]*[^\W_])?", value):
        return f"may hold only letters, digits, spaces and '-', starting and ending with a letter or digit, got {value!r}"
    return None


__all__ = ["UcsCategory", "cat_id_problem", "categories", "id_problem", "lookup", "suggest", "ucs_version"]
