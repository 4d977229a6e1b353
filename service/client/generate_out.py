"""The folder `composer generate --out` writes: checked before the model loads, never mixed.

A second run into the same folder would replace some of its files and keep others: pieces written
with --no-audio or --no-sheet-music keep the audio and scores of the pieces they replaced, and a run
of fewer samples keeps the later pieces of the run before, all of them listed on no page. So a folder
that already holds what generate writes is refused, as `composer pull` refuses to replace files, and
--force removes those files first.
"""

from __future__ import annotations

from pathlib import Path

from service.errors import UserError

# What generate writes besides its pieces (README.md, `composer generate`).
_PAGE_FILES = ("report.json", "report.html", "loss.png")
# Each piece's files start with its name: sample-01.mid, sample-01.ogg, greedy-01.roll.png...
_PIECE_PREFIXES = ("sample-", "greedy-")


def generated_files(out: Path) -> list[Path]:
    """The files in `out` that a generate run writes (none when `out` does not exist)."""
    if not out.is_dir():
        return []
    return sorted(p for p in out.iterdir()
                  if p.is_file() and (p.name in _PAGE_FILES or p.name.startswith(_PIECE_PREFIXES)))


def prepare(out: Path, force: bool) -> None:
    """Refuse an `--out` that is no folder, or one holding an earlier run's files unless `force`;
    with `force`, remove those files (and only those)."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    earlier = generated_files(out)
    if not earlier:
        return
    if not force:
        names = ", ".join(p.name for p in earlier[:3]) + (", ..." if len(earlier) > 3 else "")
        raise UserError(f"--out {out} already holds {len(earlier)} generated file(s) ({names}): choose another "
                        "folder, or add --force to replace them")
    for path in earlier:
        path.unlink()
