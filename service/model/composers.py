"""Composer conditioning: who wrote each piece (read from its file name) and the composers a model learned.

`composer submit --condition composer` feeds a learned embedding of each piece's composer beside every
token (as key conditioning feeds the key: model/network.py), so `composer generate --composer Chopin`
can ask for a composer's style. The composer of a piece comes from its file name, by the rule that
`--composers` picks files by (storage/composer_names.py: GiantMIDI-Piano's `Surname, Firstname, Title,
id.mid` and `Surname_Title_id.mid`; any other name is "unknown").

The table a model learns (ComposerTable) is made from the pieces it trains on, never the held-out test
pieces: row 0 is always "unknown" (the pieces without a readable composer, and the input for a piece
whose composer the model never saw: the mean of the learned rows where no training piece fed row 0),
then the composers in alphabetical order. It is a pure function of the corpus's file names and its
held-out split, so the driver and every training worker make the same one, and it travels with the
model (model/composer.json) for `composer generate --composer`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from service.errors import UserError
from service.storage.composer_names import UNKNOWN, composer_of, is_by
from service.storage.composer_names import composer_identity as identity

if TYPE_CHECKING:
    from service.spec import JobSpec
    from service.storage.corpus import Corpus
    from service.storage.datasets import DatasetInfo
    from service.storage.store import Store

# The composer embedding's width: a handful of style dimensions per composer; wide enough for GiantMIDI's
# ~2,800 composers to differ, small beside the token embedding so a composer with few pieces cannot
# carry much of what the network memorizes about them.
EMBEDDING = 16
@dataclass(frozen=True)
class ComposerTable:
    """The composers a model learned: row i is names[i], trained on pieces[i] pieces; row 0 is "unknown"."""

    names: tuple[str, ...]
    pieces: tuple[int, ...]

    @classmethod
    def of_names(cls, file_names: Sequence[str]) -> ComposerTable:
        """The table of the pieces with these file names (the training and validation pieces)."""
        counted = Counter(composer_of(name) for name in file_names)
        by_identity: dict[str, tuple[str, int]] = {}
        for name, count in counted.items():
            if name == UNKNOWN:
                continue
            spelled, total = by_identity.get(identity(name), (name, 0))
            by_identity[identity(name)] = (min(spelled, name), total + count)  # one spelling, whatever the order
        # Rows in the order of the names' case-folded spellings (as before accents were folded: the same
        # rows for a job resumed across that change, unless two spellings of a composer merged).
        learned = sorted(by_identity.values(), key=lambda item: item[0].casefold())
        return cls((UNKNOWN, *(name for name, _ in learned)),
                   (counted.get(UNKNOWN, 0), *(count for _, count in learned)))

    def __len__(self) -> int:
        return len(self.names)

    @property
    def learned(self) -> list[str]:
        """The composers the model trained on, by name ("unknown" not among them)."""
        return list(self.names[1:])

    def ids(self, file_names: Sequence[str]) -> np.ndarray:
        """Each file's row: its composer's, or 0 ("unknown") for a composer the table does not have."""
        rows = {identity(name): i for i, name in enumerate(self.names)}
        return np.array([rows.get(identity(composer_of(name)), 0) for name in file_names], dtype=np.int32)

    def find(self, name: str) -> int:
        """The row of a composer asked for by name (any case, accents or not); a UserError that lists the
        choices."""
        choices = ", ".join(self.choices())
        if not name.strip():
            raise UserError(f"--composer needs a composer's name: one of {choices}")
        for i, known in enumerate(self.names):
            if identity(known) == identity(name.strip()) and self.pieces[i] > 0:
                return i
        raise UserError(f"--composer {name}: this model never learned that composer; it knows {choices}")

    def choices(self) -> list[str]:
        """The names --composer takes: every composer trained on ("unknown" too when pieces had no name)."""
        return [*self.learned, *([UNKNOWN] if self.pieces[0] else [])]

    def by_pieces(self) -> list[int]:
        """The learned composers' rows, most training pieces first (then by name): the job's samples go
        to them in this order, one each, so a small --samples shows the composers best learned."""
        return sorted(range(1, len(self.names)), key=lambda i: (-self.pieces[i], identity(self.names[i])))

    def describe(self) -> list[dict]:
        """report.json's `composers`: each learned composer and its training pieces, then "unknown" with the
        pieces whose names gave no composer, where there were any (its row was trained on them too, and
        `composer generate --composer unknown` takes it)."""
        rows = [{"composer": name, "pieces": count} for name, count in zip(self.names[1:], self.pieces[1:],
                                                                           strict=True)]
        return rows + ([{"composer": UNKNOWN, "pieces": self.pieces[0]}] if self.pieces[0] else [])

    def decoder_vectors(self, vectors: np.ndarray) -> np.ndarray:
        """The composer vectors a decoder reads, from the trained embedding's. Where every training piece
        named its composer, no window fed row 0 ("unknown"), so it kept its random first values (near zero,
        where the learned rows are ten times longer): a piece of a composer the model never saw reads the
        mean of the learned rows instead, an average composer. On GiantMIDI (a tiny model, 5 runs) that
        scored such held-out pieces 3 to 9% fewer nats than the untrained row, on every piece (BENCHMARKS.md)."""
        if self.pieces[0] > 0 or len(vectors) < 2:
            return vectors
        vectors = vectors.copy()
        vectors[0] = vectors[1:].mean(axis=0)
        return vectors

    def to_json(self) -> dict:
        return {"names": list(self.names), "pieces": list(self.pieces)}

    @classmethod
    def from_json(cls, body: dict) -> ComposerTable:
        return cls(tuple(body["names"]), tuple(int(n) for n in body["pieces"]))


def table_for(corpus: Corpus, spec: JobSpec, test: np.ndarray) -> ComposerTable | None:
    """The job's composer table (None unless it is conditioned on composers), from the pieces it trains on:
    a UserError when their file names give fewer than two composers, before anything is trained."""
    if spec.condition != "composer":
        return None
    from service.model.testsplit import train_pieces

    table = ComposerTable.of_names([corpus.names[i] for i in train_pieces(corpus.pieces, test)])
    if len(table.learned) < 2:
        every = ComposerTable.of_names(corpus.names)
        if len(every.learned) >= 2:  # the names give two, but the held-out test pieces took all of one's
            gone = ", ".join(c for c in every.learned if c not in table.learned)
            raise UserError(f"--condition composer needs pieces of at least 2 composers to train on, and the "
                            f"held-out test pieces (--test-share {spec.test_share:g}) take every piece of {gone}, "
                            f"leaving {', '.join(table.learned) or 'none'}: add more of their files, or submit "
                            "with --test-share 0 (no held-out score)")
        raise too_few(table)
    return table


def refuse_certain_failure(dataset: str, picked: Sequence[str]) -> None:
    """At submit, for --condition composer: the two requests that can never give two composers, refused
    before anything is uploaded or started (the rest is known only from the corpus's names: `table_for`).
    The bundled Bach chorales are named by BWV number (bwv1.6.mid), and --composers picking one composer
    keeps that composer's pieces alone."""
    if dataset == "bach":
        raise UserError("--condition composer needs pieces of at least 2 composers, and the bach dataset's file "
                        "names (bwv1.6.mid, ...) name none: train on files named `Surname, Firstname, Title, id.mid` "
                        "or `Surname_Title_id.mid`, or submit without --condition")
    distinct = {identity(name): name for name in picked}
    if len(distinct) == 1:
        raise UserError(f"--condition composer needs pieces of at least 2 composers, and --composers keeps one "
                        f"({next(iter(distinct))}): name two or more, or submit without --condition")


def refuse_unmatched(store: Store, dataset: DatasetInfo | None, picked: Sequence[str], condition: bool) -> None:
    """At submit, once the dataset is in the store: a sharded dataset's index names its files, so requests its
    files cannot meet are refused before a cluster is asked. A `--composers` name that picks no MIDI file (a
    typo, most likely: the job trained on the others' files without a word, or, where no name picked one,
    failed after a cluster had started), and, for --condition composer, names that give fewer than two
    composers (the job failed in its tokenize stage). Files the import found not to be MIDI (`not_midi`)
    count for neither. Necessary, not enough: the held-out split is known only to the job. A dataset of the
    older one-object-per-file layout has no index: its job finds out."""
    from service.storage import datasets

    if dataset is None or dataset.layout != "shards" or not (picked or condition):
        return
    skipped = set(dataset.not_midi)
    usable = [m.name for m in datasets.load_index(store, dataset.name).files if m.name not in skipped]
    if missing := [name for name in picked if not any(is_by(file, [name]) for file in usable)]:
        every = ComposerTable.of_names(usable).learned
        some = ", ".join(every[:8]) + (f", ... ({len(every)} in all)" if len(every) > 8 else "")
        raise UserError(f"--composers {', '.join(missing)}: no MIDI file of dataset {dataset.name} is by "
                        f"{'them' if len(missing) > 1 else 'that composer'} (its file names give "
                        f"{some or 'no composer'}): fix the name, or drop it")
    if not condition:
        return
    table = ComposerTable.of_names([name for name in usable if not picked or is_by(name, picked)])
    if len(table.learned) < 2:
        raise too_few(table, "the file names of this dataset's files")


def too_few(table: ComposerTable, whose: str = "the file names of this corpus's training pieces") -> UserError:
    named = ", ".join(table.learned) or "none"
    return UserError(f"--condition composer needs pieces of at least 2 composers to train on, and {whose} "
                     f"give {len(table.learned)} ({named}; {table.pieces[0]} unknown): "
                     "name the files `Surname, Firstname, Title, id.mid` or `Surname_Title_id.mid` (GiantMIDI's "
                     "forms), add another composer's files, or submit without --condition")


def size(table: ComposerTable | None) -> int:
    """The rows the network's composer embedding has (0: not conditioned on composers)."""
    return 0 if table is None else len(table)


def requested(table: ComposerTable | None, spec: JobSpec, name: str | None, primer: Path | None = None) -> int | None:
    """The composer row `composer generate` conditions on: --composer's (a UserError for a name the model
    never learned, or for a model without composer conditioning), else a --primer file's own composer by
    its name ("unknown" when the model does not know it); None when neither is given or it takes none."""
    if name is not None:
        if table is None:
            raise UserError(f"--composer needs a model trained with --condition composer; this one ({spec.job_id}) "
                            "was not: submit with --condition composer")
        return table.find(name)
    if primer is not None and table is not None:
        return int(table.ids([primer.name])[0])
    return None


def rows_per_composer(bank: np.ndarray, table: ComposerTable, count: int,
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The job's samples, one per learned composer in turn (most pieces first, round again when --samples
    is larger): (the primer bank's rows, each from that composer's pieces where the bank has one, and the
    composer each row is conditioned on). `bank` holds each primer's composer row."""
    order = table.by_pieces()
    wanted = np.array([order[i % len(order)] for i in range(count)], dtype=np.int32)
    return np.array([pick_row(bank, int(who), rng) for who in wanted], dtype=np.int64), wanted


def pick_row(bank: np.ndarray, composer: int, rng: np.random.Generator) -> int:
    """A primer row from this composer's pieces, or from any piece when the bank has none of theirs."""
    theirs = np.flatnonzero(bank == composer)
    return int(rng.choice(theirs if len(theirs) else np.arange(len(bank))))
