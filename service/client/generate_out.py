"""The folder `composer generate --out` writes: checked before the model loads, never two runs' pieces
mixed.

A second run into the same folder would replace some pieces' files and keep others: pieces written
with --no-audio or --no-sheet-music kept the audio and scores of the pieces they replaced, and a run
of fewer samples kept the later pieces of the run before, listed on no page. So a folder that already
holds generated pieces (sample-NN.*, greedy-NN.*: a generate's, or a pulled job's samples/) is
refused, as `composer pull` refuses to replace files, and --force removes those pieces first.
report.json, report.html and loss.png are each run's own and are written anew (a pulled job's folder
is a documented --out: its pieces are in samples/, so it is not refused).
"""

from __future__ import annotations

import re
from pathlib import Path

from service.errors import UserError

# A generated piece's files: sample-01.mid, sample-01.ogg, sample-01.roll.png, greedy-02.musicxml...
_PIECE = re.compile(r"(sample|greedy)-\d+\.[\w.]+")


def pieces(out: Path) -> list[Path]:
    """The generated pieces' files in `out` (none when `out` does not exist)."""
    if not out.is_dir():
        return []
    return sorted(p for p in out.iterdir() if _PIECE.fullmatch(p.name) and (p.is_file() or p.is_symlink()))


def check(out: Path, force: bool) -> None:
    """Refuse an `--out` holding generated pieces unless `force` (one that is no folder: cli._check_folder)."""
    earlier = pieces(out)
    if earlier and not force:
        names = ", ".join(p.name for p in earlier[:3]) + (", ..." if len(earlier) > 3 else "")
        raise UserError(f"--out {out} already holds {len(earlier)} file(s) of generated pieces ({names}): choose "
                        "another folder, or add --force to replace them")


def clear(out: Path) -> None:
    """Remove the generated pieces' files in `out` (with --force, once the model has loaded)."""
    for path in pieces(out):
        path.unlink()
