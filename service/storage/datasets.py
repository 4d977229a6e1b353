"""MIDI corpora in the store under datasets/<name>/: built-ins, imported folders and zip archives.

A dataset is `datasets/<name>/dataset.json` (name, source, file count, content digest; written last)
plus its files as a few tar shards and their index (shards.py: `shards/00000.tar`, `index.json`).
Datasets stored before shards keep one object per file (`files/...`, layout "files"): jobs still read
them, and `migrate` turns them into shards. Local folders given to `submit` are uploaded
content-addressed (`<folder>-<hash>`), so resubmitting the same folder reuses it and a different
folder with the same name never overwrites it.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import time
import zipfile
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import BinaryIO

from service.errors import JobFailed, UserError
from service.storage import shards
from service.storage.composer_names import is_by
from service.storage.store import NotFound, Store

MIDI_SUFFIXES = (".mid", ".midi")
MIDI_MAGIC = b"MThd"  # how every Standard MIDI File begins (fastparse refuses anything else)
MAX_FILE_BYTES = 128 << 20  # the most fastparse reads of one file
# The total a folder or archive may unpack to unless --max-size says otherwise: GiantMIDI-Piano is
# about 210 MB of MIDI (193 MB zipped), so ten times that leaves room for larger corpora.
DEFAULT_MAX_BYTES = 2 << 30
BUILTINS = {"bach": "the Bach chorales bundled with music21, exported to MIDI on first use"}
# Named here so that users get told how to bring them in, rather than 'unknown dataset'.
IMPORTABLE = {
    "giantmidi": "GiantMIDI-Piano: download its archive, then `composer datasets import giantmidi ARCHIVE.zip`",
}


@dataclass
class DatasetInfo:
    name: str
    source: str
    files: int
    created: float
    bytes: int = 0  # the MIDI files' total size (0: imported before composer recorded it)
    layout: str = "files"  # "shards" (index.json + shards/), or "files": one object per MIDI file (older)
    digest: str = ""  # the content's sha256 (shards.Index.digest), for the token cache; "" for "files"
    shards: int = 0
    not_midi: list[str] = field(default_factory=list)  # files named .mid that are not MIDI: jobs skip them


def prefix(name: str) -> str:
    return f"datasets/{name}"


def valid_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name):
        raise UserError(f"invalid dataset name {name!r}: up to 100 letters, digits, '.', '_' or '-', "
                        "beginning with a letter or digit")
    return name


class DamagedDataset(JobFailed):
    """A dataset.json in the store that is no dataset's record (cut short, edited by hand, another tool's).
    Exit 1, as a damaged shard or job file: the store is wrong, not what the user typed."""

    def __init__(self, name: str, why: str) -> None:
        self.name = name
        where = prefix(shown(name))
        super().__init__(f"dataset {shown(name)} is damaged: its record {where}/dataset.json cannot be read ({why}); "
                         f"import its files again under another name, or remove {where}/ from the store")


# The record's fields and their JSON types (DatasetInfo's); the first four have no default.
_FIELDS: dict[str, type | tuple[type, ...]] = {
    "name": str, "source": str, "files": int, "created": (int, float), "bytes": int, "layout": str,
    "digest": str, "shards": int, "not_midi": list,
}
_REQUIRED = ("name", "source", "files", "created")


def info(store: Store, name: str) -> DatasetInfo | None:
    """The dataset's record; None where there is none; DamagedDataset where it is no record (one line, not
    a JSONDecodeError or TypeError from deep inside)."""
    try:
        raw = store.get_bytes(f"{prefix(name)}/dataset.json")
    except NotFound:
        return None
    try:
        data = json.loads(raw)
    except ValueError:  # JSONDecodeError, or bytes that are not UTF-8
        raise DamagedDataset(name, "it is not JSON") from None
    if not isinstance(data, dict):
        raise DamagedDataset(name, "it is not a JSON object")
    if why := _wrong_field(data):
        raise DamagedDataset(name, why)
    return DatasetInfo(**{k: v for k, v in data.items() if k in _FIELDS})


def _wrong_field(data: dict[str, object]) -> str | None:
    """What makes a parsed dataset.json no record: a missing field, or one of the wrong type or value."""
    for key, kind in _FIELDS.items():
        if key not in data:
            if key in _REQUIRED:
                return f"it has no {key!r}"
        elif isinstance(data[key], bool) or not isinstance(data[key], kind):  # JSON true is no file count
            return f"its {key!r} is {json.dumps(data[key])[:40]}"
    if data.get("layout", "files") not in ("files", "shards"):
        return f"its layout {json.dumps(data['layout'])[:40]} is neither \"files\" nor \"shards\""
    if not all(isinstance(n, str) for n in data.get("not_midi", [])):
        return "its 'not_midi' is not a list of file names"
    return None


def shown(text: str) -> str:
    """Text from the store as a line may show it: as it is, or where it holds a newline, an escape code or
    another character that is not printable, as Python's repr writes it (a source folder named
    "x\\nfake-row 9 files" printed a fake row in `datasets list`; a lone surrogate raised on print)."""
    return text if text.isprintable() else repr(text)


def not_stored(store: Store, name: str) -> UserError:
    """The error for a name no stored dataset has; it names the one that differs only in case, if any."""
    if other := next((n for n in dataset_names(store) if n.lower() == name.lower()), None):
        return UserError(f"no dataset {name!r} in the store, but there is {other!r} (names are case-sensitive)")
    return UserError(f"no dataset {name!r} in the store: see `composer datasets list`")


def dataset_names(store: Store) -> list[str]:
    """The names of the datasets in the store (those whose dataset.json, written last, is there; not a
    file of that name deeper down, as a per-file dataset's files/x/dataset.json)."""
    return sorted({parts[1] for k in store.list("datasets")
                   if len(parts := k.split("/")) == 3 and parts[2] == "dataset.json"})


def list_datasets(store: Store) -> tuple[list[DatasetInfo], list[DamagedDataset]]:
    """The datasets whose record can be read, and one DamagedDataset for each whose record cannot (one
    damaged record no longer hides the others)."""
    found: list[DatasetInfo] = []
    damaged: list[DamagedDataset] = []
    for name in dataset_names(store):
        try:
            meta = info(store, name)
        except DamagedDataset as e:
            damaged.append(e)
            continue
        if meta is not None:
            found.append(meta)
    return found, damaged


@dataclass
class Entry:
    """One MIDI file to store: of a local folder or zip archive, or a built-in's export (builtin_bach),
    read only when it is streamed."""

    name: str  # its relative name in the dataset, normalized
    size: int  # as the folder or the archive's directory declares it
    open: Callable[[], BinaryIO]


class _Capped(io.RawIOBase):
    """A stream that fails once it gives more bytes than the entry declared (a lying archive)."""

    def __init__(self, stream: BinaryIO, entry: Entry, source: Path) -> None:
        self.stream, self.entry, self.source, self.read_so_far = stream, entry, source, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.stream.read(len(buffer))
        self.read_so_far += len(data)
        if self.read_so_far > self.entry.size:
            _check_size(self.entry, self.read_so_far, self.source)
        buffer[:len(data)] = data
        return len(data)


def _normalized(raw: str, source: Path) -> str:
    """'./a.mid' -> 'a.mid', 'b//c.mid' -> 'b/c.mid'; a name that climbs out ('..', '/etc/x') is refused."""
    text = raw.replace("\\", "/")
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if text.startswith("/") or ".." in parts or not parts:
        raise UserError(f"{source} has an entry named {raw!r}, which points outside the dataset: remove it or "
                        "rebuild the archive with relative names")
    return "/".join(parts)


def _utf8_name(name: str) -> str:
    """A file's name as the dataset keeps it (UTF-8). A name with bytes that are not UTF-8 on disk (an old
    Latin-1 file system, a copy out of an old zip: b"Dvor\\xe1k_...") comes from Python with surrogates,
    which no index can hold (the import died on a raw UnicodeEncodeError): each such byte is read as
    Windows-1252, the code page such names usually come from ("Dvorák_..."), and the rest is kept."""
    return "".join(_cp1252(ord(c) - 0xDC00) if "\udc80" <= c <= "\udcff" else c for c in name)


def _cp1252(byte: int) -> str:
    """One byte as Windows-1252 reads it; Latin-1 for the five it leaves undefined."""
    try:
        return bytes([byte]).decode("cp1252")
    except UnicodeDecodeError:
        return bytes([byte]).decode("latin-1")


@contextmanager
def _local_source(path: Path, max_bytes: int) -> Iterator[tuple[list[Entry], int]]:
    """The MIDI files of a folder or zip with their declared sizes, checked against the caps before
    anything is read: (entries, total bytes). A zip stays open, once, while the entries are read (its
    directory is parsed one time, not once per entry)."""
    if path.is_dir():
        found = [p for p in _walk(path) if p.suffix.lower() in MIDI_SUFFIXES]
        if broken := next((p for p in found if p.is_symlink() and not p.exists()), None):
            raise UserError(_broken_link(broken))
        entries = [Entry(_utf8_name(p.relative_to(path).as_posix()), p.stat().st_size, partial(p.open, "rb"))
                   for p in found if p.is_file()]
        yield _checked(path, entries, max_bytes)
    elif path.is_file() and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            entries = [Entry(_normalized(i.filename, path), i.file_size, partial(archive.open, i))
                       for i in archive.infolist()
                       if not i.is_dir() and i.filename.lower().endswith(MIDI_SUFFIXES)]
            yield _checked(path, entries, max_bytes)
    elif path.is_file():
        raise UserError(f"dataset {str(path)!r} is a file but not a zip archive: give a folder or a .zip of MIDI files")
    elif path.exists():  # a device, a pipe, a socket
        raise UserError(f"dataset {str(path)!r} is neither a folder nor a file: give a folder or a .zip of MIDI files")
    else:
        raise UserError(f"{str(path)!r} does not exist: give a folder or a .zip of MIDI files")


def _walk(folder: Path) -> list[Path]:
    """Every path under `folder`, sorted, with links to folders followed (a folder of links to one's
    collection is imported whole) once every real folder has been walked, and each folder once: a link
    to a folder the walk reached already adds nothing, so a real folder keeps its files' names. A link to
    the dataset's folder or to one above it is not followed (it would take in the folders beside it); an
    entry that cannot be read is skipped, as pathlib's rglob skips it."""
    top = folder.resolve()
    seen: set[tuple[int, int]] = set()
    found: list[Path] = []
    links: list[Path] = []

    def visit(at: Path) -> None:
        try:
            stat = at.stat()
            if (stat.st_dev, stat.st_ino) in seen:
                return
            seen.add((stat.st_dev, stat.st_ino))
            children = sorted(at.iterdir())
        except OSError:
            return
        for child in children:
            found.append(child)
            try:
                if child.is_symlink():
                    if child.is_dir() and not top.is_relative_to(child.resolve()):
                        links.append(child)
                elif child.is_dir():
                    visit(child)
            except (OSError, RuntimeError):  # RuntimeError: resolve() of a loop of links
                continue

    visit(folder)
    while links:  # in the order met; a linked folder's own links join the end
        visit(links.pop(0))
    return sorted(found)


def _broken_link(link: Path) -> str:
    """What is wrong with a `.mid` link that leads to no file: gone, or a loop of links."""
    target = os.readlink(link)
    try:
        link.stat()
    except OSError as e:
        if e.errno == errno.ELOOP:
            return f"{link} is a link to {target}, which leads back to itself (a loop of links): remove the link"
    return f"{link} is a link to {target}, which does not exist: restore the file or remove the link"


def _checked(path: Path, entries: list[Entry], max_bytes: int) -> tuple[list[Entry], int]:
    """Refuse duplicate names, a file above the tokenizer's cap and a total above max_bytes."""
    if not entries:
        raise UserError(f"no .mid or .midi files in {str(path)!r}")
    seen: dict[str, int] = {}
    for entry in entries:
        if entry.name in seen:
            raise UserError(f"{path} has two entries that are both {entry.name!r}: keep one")
        seen[entry.name] = entry.size
        if entry.size > MAX_FILE_BYTES:
            raise UserError(f"{entry.name} in {path} is {_mib(entry.size)}, above the {_mib(MAX_FILE_BYTES)} a MIDI "
                            "file may have: remove it")
    total = sum(seen.values())
    if total > max_bytes:
        raise UserError(f"{path} holds {_mib(total)} of MIDI, above the limit of {_mib(max_bytes)}: "
                        "raise it with --max-size if that is what you meant")
    return entries, total


def parse_size(text: str) -> int:
    """'250MiB', '2GiB', '500MB', '1G', '1048576' -> bytes."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?)B?\s*", text, re.IGNORECASE)
    if not found:
        raise UserError(f"--max-size {text!r} is not a size: write e.g. 500MiB or 4GiB")
    number, unit, binary = float(found[1]), found[2].upper(), found[3]
    base = 1024 if binary or not unit else 1000
    return int(number * base ** " KMGT".index(unit or " "))


def _mib(n: int) -> str:
    """A size in MiB, or in KiB or bytes below one (a --max-size of 1KiB is not "0.0 MiB")."""
    if n < 1 << 10:
        return f"{n} bytes"
    if n < 1 << 20:
        return f"{n / (1 << 10):.1f} KiB"
    return f"{n / (1 << 20):.1f} MiB"


def _content_hash(entries: list[Entry], source: Path) -> str:
    """The dataset's content digest (shards.content_digest), streamed: the name of a staged local dataset."""
    def sha256(entry: Entry) -> str:
        digest = hashlib.sha256()
        with entry.open() as raw:
            capped = io.BufferedReader(_Capped(raw, entry, source), 1 << 20)
            while block := capped.read(1 << 20):
                digest.update(block)
        return digest.hexdigest()

    return shards.content_digest((e.name, sha256(e)) for e in entries)


WHOLE_FILE = 8 << 20  # files up to this size are read whole, ahead, on a helper thread
READ_AHEAD = 32 << 20  # how much of them may wait in memory for the packer


def _read_whole(entry: Entry, source: Path) -> tuple[bytes, str]:
    """A small entry's bytes and sha256 (decompressing and hashing release the GIL: this runs beside
    the packing and the uploads)."""
    with entry.open() as raw:
        data = raw.read(entry.size + 1)
    _check_size(entry, len(data), source)
    return data, hashlib.sha256(data).hexdigest()


def _check_size(entry: Entry, size: int, source: Path) -> None:
    """The bytes read must be the size the caps were checked against (an archive's directory can lie,
    and a folder's file can change, or be no plain file, between the listing and the read)."""
    if size != entry.size:
        how = "more" if size > entry.size else "fewer"
        raise UserError(f"{entry.name} in {source} holds {how} bytes than {_declared(source)} ({entry.size}): "
                        f"{_why(source)}")


def _declared(source: Path) -> str:
    return "the folder listed" if source.is_dir() else "its archive declares"


def _why(source: Path) -> str:
    return "it changed while it was read, or is no plain file" if source.is_dir() else \
        "the archive is damaged or forged"


def _pack_all(writer: shards.ShardWriter, entries: list[Entry], source: Path) -> list[str]:
    """Every entry into the shards, in order: small ones read ahead on a helper thread (a bounded
    amount), large ones streamed here so that memory never holds one whole. Returns the names of the
    entries that do not begin as a MIDI file does (jobs skip them; none at all is refused)."""
    not_midi: list[str] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dataset-read") as pool:
        ahead: deque[tuple[Entry, Future[tuple[bytes, str]] | None]] = deque()
        waiting = 0
        todo = iter(entries)
        while True:
            for entry in todo:
                small = entry.size <= WHOLE_FILE
                ahead.append((entry, pool.submit(_read_whole, entry, source) if small else None))
                waiting += entry.size if small else 0
                if waiting >= READ_AHEAD or not small:
                    break
            if not ahead:
                return not_midi
            entry, future = ahead.popleft()
            if future is None:
                with entry.open() as head:
                    if head.read(len(MIDI_MAGIC)) != MIDI_MAGIC:
                        not_midi.append(entry.name)
                _stream(writer, entry, source)
                continue
            data, sha256 = future.result()
            waiting -= entry.size
            if not data.startswith(MIDI_MAGIC):
                not_midi.append(entry.name)
            writer.add_bytes(entry.name, data, sha256)


def _stream(writer: shards.ShardWriter, entry: Entry, source: Path) -> None:
    """One large entry into the shards, streamed; refused when it holds more or fewer bytes than declared."""
    with entry.open() as raw:
        capped = _Capped(raw, entry, source)
        try:
            writer.add(entry.name, entry.size, io.BufferedReader(capped, 1 << 20))
        except OSError as e:  # tarfile: "unexpected end of data"
            raise UserError(f"{entry.name} in {source} holds fewer bytes than {_declared(source)} "
                            f"({entry.size}): {_why(source)}") from e
        capped.readinto(bytearray(1))  # one byte past the declared size raises


def upload(store: Store, name: str, source: Path | str, entries: list[Entry], total: int,
            created: float | None = None) -> DatasetInfo:
    """Pack the entries into tar shards and upload each as soon as it is full (multipart, while the
    next one fills), then index.json, then dataset.json; on any failure remove what was written.
    Entries that are not MIDI files are kept (a job skips them and says so) and listed in the record's
    `not_midi`, unless no entry is one: then nothing is imported."""
    written: list[str] = []
    uploads: list[Future[None]] = []

    def put(key: str, path: Path) -> None:
        store.put_file(key, path)
        path.unlink()

    try:
        with tempfile.TemporaryDirectory(prefix="composer-shards-") as tmp, \
                ThreadPoolExecutor(max_workers=2, thread_name_prefix="shard-upload") as pool:
            def finished(shard: shards.Shard, path: Path) -> None:
                key = f"{prefix(name)}/{shard.key}"
                written.append(key)
                uploads.append(pool.submit(put, key, path))
                # At most two shards wait on the disk: the upload keeps pace or the packing waits.
                while len(running := [u for u in uploads if not u.done()]) > 2:
                    wait(running, return_when=FIRST_COMPLETED)
                for done in [u for u in uploads if u.done()]:
                    done.result()

            writer = shards.ShardWriter(Path(tmp), finished)
            try:
                not_midi = _pack_all(writer, sorted(entries, key=lambda e: e.name), Path(source))
                if len(not_midi) == len(entries):
                    raise UserError(f"none of the {len(entries)} .mid or .midi files in {source} is a MIDI file "
                                    f"(they do not begin with {MIDI_MAGIC.decode()}, e.g. {not_midi[0]}): "
                                    "nothing was imported")
                index = writer.close()
                for pending in uploads:
                    pending.result()
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)  # uploads not begun never begin
                raise
        written.append(f"{prefix(name)}/{shards.INDEX}")
        store.put_bytes(written[-1], index.to_json())
        meta = DatasetInfo(name=name, source=str(source), files=len(entries), bytes=total, layout="shards",
                           created=time.time() if created is None else created, digest=index.digest(),
                           shards=len(index.shards), not_midi=not_midi)
        # dataset.json last: a dataset without it is an interrupted upload and is not listed.
        store.put_bytes(f"{prefix(name)}/dataset.json", json.dumps(meta.__dict__, indent=2).encode())
        return meta
    except BaseException as e:
        for key in written:
            store.delete(key)
        if isinstance(e, (zipfile.BadZipFile, zlib.error, EOFError)):
            raise UserError(f"{source} is damaged ({e}): nothing was imported") from None
        raise


def import_dataset(store: Store, name: str, path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> DatasetInfo:
    """`composer datasets import NAME PATH`: refuses to replace an existing dataset, or to add one whose
    name differs from another's only in case (one folder on macOS and Windows, where a store or a pull
    would mix them up)."""
    valid_name(name)
    if builtin := next((b for b in BUILTINS if b.lower() == name.lower()), None):
        raise UserError(f"{name!r} is {'' if builtin == name else 'in all but case '}the built-in dataset "
                        f"{builtin!r}: choose another name")
    if info(store, name) is not None:
        raise UserError(f"dataset {name!r} already exists in the store: choose another name")
    if other := next((n for n in dataset_names(store) if n.lower() == name.lower()), None):
        raise UserError(f"dataset {other!r} in the store differs from {name!r} only in case: choose another name")
    with _local_source(path, max_bytes) as (entries, total):
        return upload(store, name, _absolute(path), entries, total)


def _absolute(path: Path) -> Path:
    """Where a local folder or archive is, as a dataset's `source` records it: absolute, so that the
    record still says which one it was when read from another folder or machine."""
    return Path(os.path.abspath(path.expanduser()))


@dataclass
class Migrated:
    """What `repack` did beyond the new record, for `datasets migrate` to say (nothing it removes or
    leaves goes unsaid)."""

    info: DatasetInfo
    leftovers: int = 0  # per-file objects an interrupted migrate left behind, removed by this one
    kept: list[str] = field(default_factory=list)  # objects under files/ that no shard holds: left as they are
    changed: list[str] = field(default_factory=list)  # leftovers whose bytes are not what the shards hold: kept


def migrate(store: Store, name: str) -> DatasetInfo:
    """`repack`, for a caller that wants the new record only."""
    return repack(store, name).info


def repack(store: Store, name: str) -> Migrated:
    """Repack a dataset of the older one-object-per-file layout into shards under the same name. The
    new shards and index are written beside the old files, dataset.json switches to them in one
    write, and only then are the old files removed: an interruption leaves the dataset readable, and a
    rerun removes the old files an interruption left (after the switch, the record says "shards")."""
    old = info(store, valid_name(name))
    if old is None:
        raise not_stored(store, name)
    if old.layout == "shards":
        return _drop_per_file(store, name, old, interrupted=True)
    with tempfile.TemporaryDirectory(prefix="composer-migrate-") as tmp:
        fetch(store, name, Path(tmp))
        _check_migratable(name, Path(tmp))
        with _local_source(Path(tmp), max(DEFAULT_MAX_BYTES, old.bytes)) as (entries, total):
            new = upload(store, name, old.source, entries, total, created=old.created)
    return _drop_per_file(store, name, new, interrupted=False)


def _drop_per_file(store: Store, name: str, meta: DatasetInfo, interrupted: bool) -> Migrated:
    """Remove the per-file objects that the shards now hold (by name, from the index), and only those:
    an object that is no .mid or .midi file (a readme, a .kar) was never read by a job and is in no
    shard, so it is kept, named, for its owner to move or remove, rather than lost without a word.
    Leftovers of an interrupted migrate are read first and go only where their bytes are the ones the
    shards hold (the index's sha256): one written again since the shards were packed is kept, named."""
    folder = f"{prefix(name)}/files/"
    keys = store.list(folder)
    if not keys:  # the usual case for a sharded dataset: one listing, no index read
        return Migrated(meta)
    held = {m.name: m.sha256 for m in load_index(store, name).files}
    kept = [key[len(folder):] for key in keys if key[len(folder):] not in held]
    removed = [key for key in keys if key[len(folder):] in held]
    changed: list[str] = []
    if interrupted:  # this run did not pack them: it cannot know they are unchanged without reading them
        unchanged = []
        for key in removed:
            try:
                data = store.get_bytes(key)
            except NotFound:  # gone since the listing (another rerun): nothing to remove
                continue
            if hashlib.sha256(data).hexdigest() == held[key[len(folder):]]:
                unchanged.append(key)
            else:
                changed.append(key[len(folder):])
        removed = unchanged
    for key in removed:
        store.delete(key)
    return Migrated(meta, len(removed) if interrupted else 0, kept, changed)


def _check_migratable(name: str, folder: Path) -> None:
    """Refuse, naming the stored dataset, one whose per-file objects give no MIDI file to repack (the
    import's refusals named the temporary folder they were fetched to, or the long-gone source)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    midi = [p for p in files if p.suffix.lower() in MIDI_SUFFIXES]
    where = f"{prefix(name)}/files/"
    if not midi:
        others = f" (only {len(files)} other object{'s' if len(files) > 1 else ''} there)" if files else ""
        raise UserError(f"dataset {name} has no .mid or .midi file in the store ({where}){others}: nothing to "
                        f"migrate, and it is left as it was; jobs cannot use it: remove {prefix(name)}/ from the store")
    if not any(_begins_as_midi(p) for p in midi):
        example = shown(midi[0].relative_to(folder).as_posix())
        raise UserError(f"none of the {len(midi)} .mid or .midi files of dataset {name} ({where}) is a MIDI file "
                        f"(they do not begin with {MIDI_MAGIC.decode()}, e.g. {example}): nothing was migrated, and "
                        f"it is left as it was; jobs cannot use it: remove {prefix(name)}/ from the store")


def _begins_as_midi(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(len(MIDI_MAGIC)) == MIDI_MAGIC


def stage_local(store: Store, path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> DatasetInfo:
    """Upload a local folder or zip for a job (content-addressed, so once) and return its record."""
    with _local_source(path, max_bytes) as (entries, total):
        stem = re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem if path.is_file() else path.name).strip("-.") or "local"
        name = f"{stem[:60]}-{_content_hash(entries, path)[:10]}"
        return info(store, name) or upload(store, name, _absolute(path), entries, total)


def resolve(store: Store, dataset: str, max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[str, DatasetInfo | None]:
    """What `--dataset` names: a built-in, a dataset in the store, or a local folder/zip to upload
    (at most max_bytes unpacked, default DEFAULT_MAX_BYTES: `submit --max-size`). Returns its name and
    its record in the store (None for a built-in the cluster has not exported yet), each read once."""
    if dataset in BUILTINS:
        return dataset, info(store, dataset)
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", dataset) and (found := info(store, dataset)) is not None:
        return dataset, found
    try:
        path = Path(dataset).expanduser()
    except RuntimeError:  # ~user of no such user
        raise UserError(f"dataset {dataset!r}: there is no such user's home folder") from None
    if path.exists():
        staged = stage_local(store, path, max_bytes)
        return staged.name, staged
    if dataset in IMPORTABLE:
        raise UserError(f"dataset {dataset!r} is not imported yet. {IMPORTABLE[dataset]}")
    raise UserError(
        f"unknown dataset {dataset!r}: not a built-in ({', '.join(BUILTINS)}), not in the store, "
        "and no such folder or zip file; see `composer datasets list`"
    )


def _check_free_disk(dest: Path, meta: DatasetInfo | None) -> None:
    """Refuse a download that cannot fit, before it starts (the dataset's recorded size, plus a margin)."""
    if meta is None or not meta.bytes:
        return  # imported before sizes were recorded
    existing = next(p for p in (dest, *dest.parents) if p.exists())
    free = shutil.disk_usage(existing).free
    needed = int(meta.bytes * 1.05) + (16 << 20)
    if free < needed:
        raise JobFailed(f"dataset {meta.name} needs {_mib(needed)} on the head but {existing} has {_mib(free)} free: "
                        "give the head more disk")


def load_index(store: Store, name: str) -> shards.Index:
    return shards.Index.from_json(store.get_bytes(f"{prefix(name)}/{shards.INDEX}"))


def select(index: shards.Index, composers: list[str] | None = None) -> list[shards.Member]:
    """The files of a sharded dataset a job reads: all, or those of the given composers (from the
    index alone, so only the shards that hold them are fetched)."""
    return [m for m in index.files if not composers or is_by(m.name, composers)]


def fetch(store: Store, name: str, dest: Path, composers: list[str] | None = None) -> list[Path]:
    """Download the MIDI files of a dataset in the older one-object-per-file layout (optionally
    only some composers) into dest."""
    _check_free_disk(dest, info(store, name))
    folder = f"{prefix(name)}/files/"
    keys = store.list(folder)
    out: list[Path] = []
    for key in keys:
        rel = key[len(folder):]
        if composers and not is_by(rel, composers):
            continue
        target = dest / rel
        store.get_file(key, target)
        out.append(target)
    return out
