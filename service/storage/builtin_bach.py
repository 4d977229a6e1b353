"""The built-in `bach` dataset: the chorales of music21's bach corpus, exported to MIDI once per store.

The corpus is not a list of chorales as it stands. It holds 20 Roman-numeral analyses, 3 chorales in
two encodings, a keyboard prelude, and 21 chorale settings twice: a cantata's movement and the same
setting in a chorale collection, another movement or another cantata, with and without its
instruments, with and without its repeat written out, or transposed. A twin on both sides of the
held-out split would be scored on music it was trained on, so each is exported once: 388 files from
music21 10.5.1's 433.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from service.errors import UserError
from service.storage.datasets import DatasetInfo, Entry, info, prefix, upload
from service.storage.store import Store

NAME = "bach"
# The record's source; an earlier export's (430 or 410 files) was "music21 corpus: bach".
SOURCE = "music21 corpus: bach chorales, each once (388 of 433)"
EXPORT_EVERY_S = 10.0  # how often the export says how far it got

NOT_A_CHORALE = {"bwv846": "a keyboard prelude (the Well-Tempered Clavier)"}

# The chorales the corpus holds twice: the one left out, and the one kept. A twin sets its chorale as
# the kept one does: in three of the four voices at least 90% of the shorter one's melodic intervals
# are the other's, in order, and in the fourth at least 80% (difflib's matching blocks; one is often
# the other with its repeat written out, and seven are transposed); the test checks that. Found by
# comparing every two of the corpus's 409 files with four voices so. The next most alike pair,
# bwv166.6 and bwv84.5 (83 and 85% in two voices), sets one tune otherwise and is kept whole. Of two
# twins the one with fewer instruments is kept; where they have as many, the lower catalogue number,
# or the first by name (bwv18.5-lz).
TWINS: dict[str, str] = {
    "bwv112.5-sc": "bwv112.5",
    "bwv12.7": "bwv69.6-a",
    "bwv137.5": "bwv120.8-a",
    "bwv175.7": "bwv59.3",
    "bwv177.4": "bwv117.4",
    "bwv18.5-w": "bwv18.5-lz",
    "bwv190.7-inst": "bwv190.7",
    "bwv20.11": "bwv20.7",
    "bwv227.11": "bwv227.1",
    "bwv244.17": "bwv244.15",
    "bwv248.23-2": "bwv248.23-s",
    "bwv248.35-3c": "bwv248.35-3",
    "bwv248.42-4": "bwv248.42-s",
    "bwv248.64-6": "bwv248.64-s",
    "bwv248.9-1": "bwv248.9-s",
    "bwv279": "bwv158.4",
    "bwv280": "bwv176.6",
    "bwv41.6": "bwv171.6",
    "bwv398": "bwv197.7-a",
    "bwv414": "bwv253",
    "bwv274": "bwv62.6",
}
LEFT_OUT = set(NOT_A_CHORALE) | set(TWINS)


def chorale_scores(paths: list[str]) -> list[str]:
    """The corpus's files to export, sorted by name: no Roman-numeral analysis (`riemenschneider*.rntxt`:
    a reading of the harmony as block chords, not Bach's voices), the MusicXML of a chorale also held
    as Humdrum (bwv277, bwv281, bwv366), and not the prelude or the twins named in LEFT_OUT."""
    chosen: dict[str, str] = {}
    # MusicXML last, so that it is the one kept (the one the export kept before, by the corpus's order).
    for path in sorted(paths, key=lambda p: (Path(p).suffix.lower() == ".mxl", p)):
        stem = Path(path).stem
        if Path(path).suffix.lower() != ".rntxt" and stem not in LEFT_OUT:
            chosen[stem] = path
    return [chosen[stem] for stem in sorted(chosen)]


def _export_chorale(path: str) -> tuple[str, bytes | None]:
    from music21 import corpus
    from music21.midi.translate import streamToMidiFile

    try:
        return Path(path).stem, streamToMidiFile(corpus.parse(path)).writestr()
    except Exception:  # a corpus file music21 itself cannot translate is skipped, not fatal
        return Path(path).stem, None


def ensure_builtin(store: Store, name: str, workers: int = 2,
                   say: Callable[[str], None] = lambda line: None) -> DatasetInfo:
    """Export a built-in corpus to MIDI once and cache it in the store (runs in the job driver); `say`
    hears how far the export got, every EXPORT_EVERY_S, and what it exported (a minute on 2 cores)."""
    if name != NAME:
        raise UserError(f"unknown built-in dataset {name!r}")
    existing = info(store, name)
    if existing is not None:
        if existing.source != SOURCE:
            say(f"this store's {name} dataset is an earlier export ({existing.files} files, Roman-numeral "
                f"analyses or chorales held twice among them): remove {prefix(name)}/ from the store to export "
                "the chorales anew")
        return existing
    from music21 import corpus

    paths = chorale_scores([str(p) for p in corpus.getComposer("bach")])
    say(f"exporting the {len(paths)} Bach chorales bundled with music21 to MIDI: once, for this store")
    started = last = time.monotonic()
    exported: dict[str, bytes | None] = {}
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for stem, data in pool.map(_export_chorale, paths, chunksize=8):
            exported[stem] = data
            if time.monotonic() - last >= EXPORT_EVERY_S and len(exported) < len(paths):
                last = time.monotonic()
                say(f"exported {len(exported)} of {len(paths)} chorales")
    failed = sorted(stem for stem, data in exported.items() if data is None)
    said = f"exported {len(paths) - len(failed)} of {len(paths)} chorales in {time.monotonic() - started:.0f} s"
    if failed:
        said += f"; music21 could not translate {len(failed)}, left out: {', '.join(failed[:5])}"
        said += " ..." if len(failed) > 5 else ""
    say(said)
    entries = [Entry(f"{stem}.mid", len(data), lambda data=data: io.BytesIO(data))
               for stem, data in sorted(exported.items()) if data is not None]
    return upload(store, name, SOURCE, entries, sum(e.size for e in entries))
