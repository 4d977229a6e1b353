"""Who a MIDI file's name says wrote it: one rule for `--composers` (which files a job reads) and for
composer conditioning (model/composers.py: which composer row a piece trains under), so that a file a
filter picks as Chopin's is one the model learns as Chopin's.

The two forms GiantMIDI-Piano names its files in:

    Surname, Firstname, Title, id.mid      "Chopin, Frédéric, Études, Op.10, g0hoN6_HDVU.mid" -> Chopin
    Surname_Title_id.mid                   "Debussy_Estampes_R-YcnPXY2yE_cut_no_1.mid"        -> Debussy

A name in neither form, or whose first field is not a word (FF3_Battle_(Piano).mid), is "unknown", and
so is a surname "Unknown". Composers are told apart by their surname without regard to case or accents
(Bach and bach are one, and so are Dvořák and Dvorak).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from pathlib import PurePosixPath

from service.errors import UserError

UNKNOWN = "unknown"
# Which files a --composers filter picks, as a number: token caches of a job with --composers are keyed by
# it (storage/corpus.py), so a change to the rule never reuses tokens of the files the old rule picked.
# 2: the rule composer conditioning reads (before, any name that began with the composer's name).
PICK_RULE = 2


def composer_identity(name: str) -> str:
    """Who a composer's name is, for telling composers apart: without regard to case or accents (Dvořák
    is Dvorak)."""
    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def composer_of(file_name: str) -> str:
    """The composer a file name gives (its surname, first letter capitalized), or "unknown"."""
    # Composed Unicode: a name from macOS spells ř as r and a combining caron, which is not a letter.
    stem = PurePosixPath(unicodedata.normalize("NFC", file_name).replace("\\", "/")).name
    stem = re.sub(r"\.midi?$", "", stem, flags=re.IGNORECASE)
    fields = [f.strip() for f in stem.split(",")]
    if len(fields) >= 4 and _is_surname(fields[0], spaces=True):  # Surname, Firstname, Title, id
        surname = fields[0]
    else:
        parts = stem.split("_")
        if len(parts) < 3 or not _is_surname(parts[0], spaces=False):  # Surname_Title_id
            return UNKNOWN
        surname = parts[0]
    if composer_identity(surname) == UNKNOWN:  # "Unknown, ..." is no composer: the unknown row
        return UNKNOWN
    return surname[:1].upper() + surname[1:]


def parse_filter(text: str | None) -> list[str]:
    """`--composers chopin,Debussy`: the names, lowercased. An empty name (`chopin,,liszt`, `,`) and
    `unknown`, which no filter picks, are refused: either would leave a filter that does not say what it
    seems to (`,` read as no filter at all, `unknown,chopin` as Chopin alone)."""
    if not text:
        return []
    names = [c.strip().lower() for c in text.split(",")]
    if "" in names:
        raise UserError(f"--composers {text!r} holds an empty name: give names separated by commas, e.g. "
                        "chopin,debussy")
    if any(composer_identity(name) == UNKNOWN for name in names):
        raise UserError("--composers: no filter picks 'unknown' (the files whose names give no composer): "
                        "leave it out, or drop --composers to read every file")
    return names


def is_by(file_name: str, composers: Iterable[str]) -> bool:
    """Whether the file's name gives one of these composers (`--composers`): a name that gives none is
    picked by no filter."""
    composer = composer_of(file_name)
    return composer != UNKNOWN and composer_identity(composer) in {composer_identity(c) for c in composers}


def _is_surname(text: str, spaces: bool) -> bool:
    """Letters, with the apostrophes, hyphens and dots of names like d'Indy or Saint-Saëns (and in the
    comma form spaces: Van Dyke); at least two characters, the first a letter. Not FF3 or (Piano)."""
    allowed = "'’.-" + (" " if spaces else "")
    return len(text) >= 2 and text[0].isalpha() and all(c.isalpha() or c in allowed for c in text)
