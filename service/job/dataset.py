"""Stage 1: which MIDI files of the dataset the job reads (a built-in dataset is made first).

A sharded dataset is only looked up here (its index): the tokenize stage streams its shards, or
finds its tokens in the cache and fetches nothing. A dataset in the older one-object-per-file
layout is downloaded onto the head here, file by file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from service.errors import ComposerError
from service.job.context import JobRun
from service.storage import builtin_bach, datasets, shards


@dataclass
class Selection:
    info: datasets.DatasetInfo
    index: shards.Index | None = None  # a sharded dataset's index, else None
    members: list[shards.Member] = field(default_factory=list)  # the files chosen from the index
    paths: list[Path] = field(default_factory=list)  # an older dataset's files, downloaded

    @property
    def count(self) -> int:
        return len(self.members) if self.index is not None else len(self.paths)


def run(job: JobRun) -> Selection:
    spec = job.spec
    job.phase("dataset", f"looking up dataset {spec.dataset}")
    if spec.dataset in datasets.BUILTINS:
        builtin_bach.ensure_builtin(job.store, spec.dataset, workers=max(1, os.cpu_count() or 1), say=job.note)
    meta = datasets.info(job.store, spec.dataset)
    if meta is None:
        raise ComposerError(f"dataset {spec.dataset} is not in the store {job.store.uri}: "
                            "see `composer datasets list`")
    if meta.layout == "shards":
        index = datasets.load_index(job.store, spec.dataset)
        chosen = datasets.select(index, spec.composers or None)
        selection = Selection(meta, index, members=chosen)
        wanted = {m.shard for m in chosen}
        job.say(f"{len(chosen)} MIDI files in {len(wanted)} of the dataset's {len(index.shards)} shards")
    else:
        job.say(f"dataset {spec.dataset} stores one object per file (an older layout): fetching each; "
                f"`composer datasets migrate {spec.dataset}` makes it a few shards and allows the token cache")
        selection = Selection(meta, paths=datasets.fetch(job.store, spec.dataset, job.work / "midi",
                                                         spec.composers or None))
        job.say(f"{len(selection.paths)} MIDI files")
    if not selection.count:
        if not spec.composers:
            raise ComposerError(f"dataset {spec.dataset} has no MIDI files")
        raise ComposerError(f"dataset {spec.dataset} has no MIDI files by {', '.join(spec.composers)}: --composers "
                            "reads the composer from names `Surname, Firstname, Title, id.mid` or "
                            "`Surname_Title_id.mid`")
    return selection
