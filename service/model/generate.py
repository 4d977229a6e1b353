"""Sampling new pieces from a trained model: stateful decoding, many samples in one batch.

The decoder (service/model/decoder.py) runs one step at a time and carries the LSTM state, so each new
token costs one step (the paper re-ran the whole network on a 100-token window for every note).
A key-conditioned model gets each row's key at every step: the key of the primer's piece, or the
one asked for with --key (then no other key token may be sampled, and the piece starts with it). A
composer-conditioned model (model/composers.py) gets each row's composer the same way: the primer's
piece's, or the one asked for with --composer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from service.errors import UserError
from service.model.architecture import decoder_for as network_decoder
from service.model.composers import ComposerTable
from service.model.decoder import LstmDecoder
from service.music import evaluation, quality
from service.music.grammars import grammar_for, keep_release_mass, release_tokens
from service.music.keys import key_name, key_token, piece_keys, token_keys
from service.music.sampling import Sampling, choose
from service.spec import JobSpec

if TYPE_CHECKING:
    from service.model.windows import TrainWindows

MODEL_FILE = "model.keras"
META_FILE = "composer.json"
PRIMERS_FILE = "primers.npy"
PRIMER_KEYS_FILE = "primer-keys.npy"
PRIMER_COMPOSERS_FILE = "primer-composers.npy"  # a composer-conditioned model's: each primer's composer row
# Written by the job beside the model so that `composer generate` makes the job's page: the corpus
# column and distributions the quality is measured against, and the training loss curve.
REFERENCE_FILE = "reference.json"
LOSS_FILE = "loss.png"

# Told what a generation is doing, for `composer generate` to show (client/generate_progress.py): a stage
# ("sampling", "greedy", "engraving", "audio", "greedy-audio", "measuring") and how far it is, as (done,
# total): notes of the row furthest behind while sampling, else pieces; total 0 where there is nothing to
# count. Called at every decoding step: it must be cheap.
Progress = Callable[[str, int, int], None]


def _quiet(stage: str, done: int, total: int) -> None:
    """The job's: its log has phases, not steps."""


@dataclass
class ModelInfo:
    """What model/composer.json says: enough to check a request before TensorFlow is loaded."""

    spec: JobSpec
    vocab: list[str]
    scheme: str
    composers: ComposerTable | None = field(default=None, kw_only=True)  # the composers it learned, if any

    def keys_for(self, primers: Primers) -> np.ndarray | None:
        """The key of every row when the model is key-conditioned; None when it takes no key."""
        return primers.keys if self.spec.key_conditioning else None

    def composers_for(self, primers: Primers) -> np.ndarray | None:
        """The composer row of every row when the model is composer-conditioned; None when it takes none."""
        return primers.composers if self.composers is not None else None


@dataclass
class TrainedModel(ModelInfo):
    decoder: LstmDecoder


@dataclass
class Primers:
    tokens: np.ndarray  # (rows, time) token ids
    keys: np.ndarray  # (rows,) key index of each row's piece (see service/music/keys.py)
    composers: np.ndarray | None = None  # (rows,) composer row of each row's piece (model/composers.py)

    def take(self, rows: np.ndarray) -> Primers:
        return Primers(self.tokens[rows], self.keys[rows], None if self.composers is None else self.composers[rows])

    def in_key(self, key: int) -> Primers:
        return Primers(self.tokens, np.full(len(self.tokens), key, dtype=np.int8), self.composers)

    def by_composer(self, composers: np.ndarray | int) -> Primers:
        """Every row conditioned on this composer row (or each on its own of `composers`)."""
        rows = np.broadcast_to(np.asarray(composers, np.int32), len(self.tokens)).copy()
        return Primers(self.tokens, self.keys, rows)


def save_model_dir(model, spec: JobSpec, vocab: list[str], scheme: str, primers: Primers, out: Path,
                   composers: ComposerTable | None = None) -> None:
    """model/: the Keras model, what is needed to rebuild the decoder (and the composer table), and primer
    windows."""
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / MODEL_FILE)
    meta = {"spec": json.loads(spec.to_json()), "vocab": vocab, "scheme": scheme, "format": 1,
            **({"composers": composers.to_json()} if composers is not None else {})}
    (out / META_FILE).write_text(json.dumps(meta, indent=1))
    np.save(out / PRIMERS_FILE, primers.tokens.astype(np.int32), allow_pickle=False)
    np.save(out / PRIMER_KEYS_FILE, primers.keys.astype(np.int8), allow_pickle=False)
    if primers.composers is not None:
        np.save(out / PRIMER_COMPOSERS_FILE, primers.composers.astype(np.int32), allow_pickle=False)


def decoder_for(model, spec: JobSpec, vocab: list[str], scheme: str,
                composers: ComposerTable | None = None) -> TrainedModel:
    return TrainedModel(spec, vocab, scheme, network_decoder(model, spec, len(vocab), composers), composers=composers)


def read_model_info(path: Path) -> ModelInfo:
    if not path.exists():
        raise UserError(f"--model {path} does not exist: give the model/ folder of `composer pull`")
    if not (path / META_FILE).is_file() or not (path / MODEL_FILE).is_file():
        raise UserError(f"{path} is not a composer model directory (no {META_FILE} / {MODEL_FILE}): "
                        "give the model/ folder of `composer pull`")
    with _damaged(path, META_FILE):
        meta = json.loads((path / META_FILE).read_text())
        table = ComposerTable.from_json(meta["composers"]) if "composers" in meta else None
        return ModelInfo(JobSpec.from_json(json.dumps(meta["spec"])), meta["vocab"], meta["scheme"], composers=table)


@contextmanager
def _damaged(folder: Path, name: str) -> Iterator[None]:
    """A model folder's file that cannot be read in one line: cut short or edited (pull it again), or written by
    another version of composer or TensorFlow than this machine's (the same error to Keras)."""
    try:
        yield
    except (OSError, ValueError, KeyError, TypeError) as e:
        why = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"{folder / name} cannot be read ({why}): it is damaged (pull the job again: `composer "
                        "pull JOB --to DIR --force`), or another version of composer or TensorFlow wrote it") from None


def load_model_dir(path: Path) -> tuple[TrainedModel, Primers]:
    from service.model.network import keras

    info = read_model_info(path)
    with _damaged(path, MODEL_FILE):
        trained = keras().models.load_model(path / MODEL_FILE, compile=False)
    with _damaged(path, PRIMERS_FILE):
        tokens = np.load(path / PRIMERS_FILE, allow_pickle=False)
    keys_file = path / PRIMER_KEYS_FILE  # absent in model folders from before key conditioning
    with _damaged(path, PRIMER_KEYS_FILE):
        keys = np.load(keys_file, allow_pickle=False) if keys_file.is_file() else np.zeros(len(tokens), np.int8)
    with _damaged(path, PRIMER_COMPOSERS_FILE):
        who = np.load(path / PRIMER_COMPOSERS_FILE, allow_pickle=False) if info.composers is not None else None
    return decoder_for(trained, info.spec, info.vocab, info.scheme, info.composers), Primers(tokens, keys, who)


def pick_primers(tokens: np.ndarray, offsets: np.ndarray, vocab: list[str], windows: TrainWindows, count: int,
                 length: int, rng: np.random.Generator, piece_composers: np.ndarray | None = None) -> Primers:
    """`count` random windows of `length` tokens from the training windows, with their pieces' keys (and
    composer rows, given each piece's)."""
    chosen = windows.starts(rng.choice(windows.count, size=count, replace=windows.count < count))
    windows = np.stack([tokens[s:s + length] for s in chosen]).astype(np.int32)
    pieces = np.searchsorted(offsets[1:], chosen, side="right")
    return Primers(windows, piece_keys(tokens, offsets, vocab)[pieces],
                   None if piece_composers is None else piece_composers[pieces])


def primer_from_midi(model: ModelInfo, path: Path, count: int, key: int | None = None) -> Primers:
    """The last seq_len tokens of a MIDI file, in the model's vocabulary, once per sample; for a
    key-conditioned model in `key`, else in the file's own key."""
    import fastparse

    result = fastparse.tokenize([str(path)], scheme=model.scheme, vocab=model.vocab)
    if result.errors:
        raise UserError(f"--primer {path}: {result.errors[0][1]}")
    all_tokens = np.asarray(result.tokens, dtype=np.int32)
    tokens = all_tokens[-model.spec.seq_len:]
    if len(tokens) == 0:
        raise UserError(f"--primer {path} has no notes this model knows ({result.unknown} unknown tokens)")
    if key is None and model.spec.key_conditioning:
        # The primer's own key token, read without the model's vocabulary (which would drop an unknown one).
        own = fastparse.tokenize([str(path)], scheme=model.scheme)
        key = int(piece_keys(np.asarray(own.tokens), np.asarray(own.offsets), list(own.vocab))[0])
        if key_token(key) not in model.vocab:
            raise UserError(f"--primer {path} is in {key_name(key)}, a key this model never saw in training: "
                            "give --key with one it knows")
    return Primers(np.tile(tokens, (count, 1)), np.full(count, key or 0, dtype=np.int8))


def banned_for_key(model: ModelInfo, key: int) -> np.ndarray:
    """Checks that the model can write in this key; the key tokens it may then not sample (every other key)."""
    if not model.spec.key_conditioning:
        raise UserError(f"--key needs a model trained with key conditioning; this one ({model.spec.job_id}) was "
                        "not: submit with --key-conditioning")
    of_token = token_keys(model.vocab)
    if key not in of_token:
        seen = ", ".join(key_name(k) for k in sorted(set(of_token[of_token >= 0].tolist())))
        raise UserError(f"--key {key_name(key)}: this model never saw that key in training; its keys are {seen}")
    return np.flatnonzero((of_token >= 0) & (of_token != key))


def sample(model: TrainedModel, primers: Primers, notes: int, sampling: Sampling, rng: np.random.Generator,
           banned: np.ndarray | None = None, progress: Progress = _quiet, stage: str = "sampling") -> list[np.ndarray]:
    """Continue each primer row until it has written `notes` notes; returns each row's new token ids.

    Every row is a stream that decodes strictly on its own: for the remi and performance schemes
    fastparse's grammar (music/grammars.py) masks, at each step, the tokens that would break it (a
    remi row's first token is then a TimeSig, after the Key a key-conditioned row gets written before
    it; a performance row strikes its notes, then releases them all); for notes-chords, where every token is a
    note or a chord, tokens with more notes than a row has left are masked. The masks are numpy
    (and, for the grammar, four native calls per step for the whole batch: allowed, push, notes,
    can_end): no framework call is added to a step. `progress` is told the notes of the row furthest
    behind at every step, as `stage`."""
    keys, who = model.keys_for(primers), model.composers_for(primers)
    rows = len(primers.tokens)
    grammar = grammar_for(model.vocab, model.scheme, rows, notes, key_first=keys is not None)
    release = release_tokens(model.vocab, model.scheme)  # performance: see keep_release_mass
    if grammar is None:
        per_token = quality.notes_per_token(model.vocab, model.scheme)
    never = np.zeros(len(model.vocab), dtype=bool)  # masked at every step: the banned keys, silent tokens
    if banned is not None:
        never[banned] = True
    if grammar is None:
        never |= per_token == 0
    written = np.zeros(rows, dtype=np.int64)
    done = np.zeros(rows, dtype=bool)
    out: list[list[int]] = [[] for _ in range(rows)]
    length = np.zeros(rows, dtype=np.int64)  # tokens in each row so far
    whole = np.zeros(rows, dtype=np.int64)  # each row's length when it last could end (after a note)
    progress(stage, 0, notes)
    logits = model.decoder.run(primers.tokens, keys, who)
    # A note takes 4 tokens (Position, Pitch, Velocity, Duration), and the grammar allows at most two
    # empty bars (a TimeSig and a Bar each) before one: the cap is never reached by a remi stream. A
    # performance note takes at most 9 (Velocity, NoteOn, NoteOff, three TimeShifts before each).
    for _ in range(notes * 16 + 64):
        logits[:, never] = -np.inf
        if release is not None:
            logits = keep_release_mass(logits, grammar.allowed(), release)
        elif grammar is not None:
            logits[~grammar.allowed()] = -np.inf
        else:
            left = np.where(done, notes, notes - written)  # a finished row's choice is not used
            logits[per_token[None, :] > left[:, None]] = -np.inf
        chosen = choose(logits, sampling, rng)
        if grammar is not None:
            grammar.push(np.where(done, -1, chosen).tolist())
            written = grammar.notes()
        else:
            written = written + np.where(done, 0, per_token[chosen])
        for row in np.flatnonzero(~done):
            out[row].append(int(chosen[row]))
        length += ~done
        if grammar is not None:
            whole = np.where(~done & grammar.can_end(), length, whole)
        done |= written >= notes
        progress(stage, min(int(written.min()), notes), notes)
        if done.all():
            break
        logits = model.decoder.step(chosen, keys, who)
    # A row cut short by the cap ends after its last whole note, so that it still decodes.
    return [np.asarray(row if grammar is None or done[i] else row[:whole[i]], dtype=np.int32)
            for i, row in enumerate(out)]


def write_midi(model: TrainedModel, tokens: list[np.ndarray], out: Path, prefix: str = "sample",
               keys: np.ndarray | None = None) -> list[Path]:
    """One MIDI file per row; with keys (a key-conditioned model), each row's key token goes first, so
    the file carries that key signature. Rows from `sample` decode strictly: that is checked."""
    import fastparse

    out.mkdir(parents=True, exist_ok=True)
    ids = {token: i for i, token in enumerate(model.vocab)}
    paths = []
    for i, row in enumerate(tokens, start=1):
        path = out / f"{prefix}-{i:02d}.mid"
        if keys is not None and key_token(int(keys[i - 1])) in ids:
            row = np.concatenate([[ids[key_token(int(keys[i - 1]))]], row]).astype(np.int32)
        path.write_bytes(fastparse.detokenize(row, model.vocab, scheme=model.scheme, strict=True))
        paths.append(path)
    return paths


def describe_samples(model: ModelInfo, generated: Generated, corpus: CorpusReference | None,
                     report_dir: Path) -> tuple[dict, list[dict]]:
    """report.json's column of generated rows (against the job's held-out set and training distributions
    where the model folder has them; music/evaluation.py), with the tokens decoding would drop and, for
    a key-conditioned model, the share of notes in each row's conditioning key; and each piece's own
    measures with its file."""
    tokens = list(generated.tokens)
    described, measures = evaluation.describe_generated(
        tokens, model.vocab, model.scheme, None if corpus is None else corpus.evaluation,
        None if corpus is None else corpus.measures)
    described["dropped_tokens"] = quality.dropped_tokens(tokens, model.vocab, model.scheme,
                                                         key_first=generated.keys is not None)
    if generated.keys is not None:
        described["in_conditioned_key_share"] = quality.share_in_keys(tokens, model.vocab, model.scheme,
                                                                      generated.keys)
    files = [str(p.relative_to(report_dir)) if p.is_relative_to(report_dir) else p.name for p in generated.paths]
    return described, [{"file": f, **m} for f, m in zip(files, measures, strict=True)]


@dataclass
class Generated:
    paths: list[Path]  # one MIDI file per row
    tokens: list[np.ndarray]  # each row's sampled token ids
    keys: np.ndarray | None  # each row's conditioning key, for a key-conditioned model
    seconds: float  # the sampling alone
    composers: list[str] | None = None  # each row's conditioning composer, for a composer-conditioned model

    @property
    def ms_per_step(self) -> float:
        return round(1000 * self.seconds / max(max((len(t) for t in self.tokens), default=0), 1), 3)


def generate(model: TrainedModel, primers: Primers, notes: int, sampling: Sampling, rng: np.random.Generator,
             out: Path, banned: np.ndarray | None = None, sheet_music: bool = True,
             prefix: str = "sample", audio: bool = True, beat: bool = False, progress: Progress = _quiet) -> Generated:
    """The one generation path, for the job's samples and for `composer generate`: continue each primer
    row by `notes` notes, write one MIDI file per row (PREFIX-NN.mid), its audio (PREFIX-NN.ogg)
    and its engraving when asked (with `beat`, on the beat estimated from its onsets: a corpus on a
    transcription clock; service/music/beat.py)."""
    started = time.monotonic()
    greedy = prefix == "greedy"  # the progress stages of the paper's pieces: "greedy", "greedy-audio"
    tokens = sample(model, primers, notes, sampling, rng, banned, progress, "greedy" if greedy else "sampling")
    seconds = time.monotonic() - started
    keys = model.keys_for(primers)
    paths = write_midi(model, tokens, out, prefix=prefix, keys=keys)
    if sheet_music:
        from service.music.render import render_sample

        for row, path in enumerate(paths):
            progress("engraving", row, len(paths))
            render_sample(path, title=f"{model.spec.job_id}: {path.stem}",
                          key=None if keys is None else int(keys[row]), beat=beat)
    if audio:
        write_audio(paths, progress, "greedy-audio" if greedy else "audio")
    who = model.composers_for(primers)
    return Generated(paths, tokens, keys, seconds, None if who is None else [model.composers.names[i] for i in who])


@dataclass
class CorpusReference:
    """What generated pieces are measured against, kept in the model folder (reference.json): the
    training excerpts' distributions (the JS distances), and the training and held-out columns with the
    held-out pieces' features (music/evaluation.py)."""

    measures: quality.Reference
    evaluation: evaluation.HeldOutReference
    excerpt_tokens: int  # the mean length of the training excerpts, in tokens

    def save(self, model_dir: Path) -> None:
        # "corpus": the training column, where a composer from before format 2 reads it.
        body = {"format": 2, "excerpt_tokens": self.excerpt_tokens, "measures": self.measures.to_json(),
                "evaluation": self.evaluation.to_json(), "corpus": self.evaluation.training}
        (model_dir / REFERENCE_FILE).write_text(json.dumps(body, indent=1, sort_keys=True))

    @classmethod
    def load(cls, model_dir: Path) -> CorpusReference | None:
        """The job's reference; None for a model folder from before jobs wrote one. A job from before the
        held-out split (format 1) has its corpus column as the training column, and no held-out one."""
        path = model_dir / REFERENCE_FILE
        if not path.is_file():
            return None
        try:
            body = json.loads(path.read_text())
            if body.get("format", 1) == 1:  # the meter is then decided from the generated pieces
                measured = evaluation.HeldOutReference(None, "", dict(body["corpus"]), None, [])
            else:
                measured = evaluation.HeldOutReference.from_json(body["evaluation"])
            return cls(quality.Reference.from_json(body["measures"]), measured, int(body["excerpt_tokens"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise UserError(f"{path} is damaged: pull the job again") from None


@dataclass
class Pieces:
    """What one generation writes: the samples and, from the same primers, the paper's greedy argmax."""

    sampled: Generated
    greedy: Generated | None  # None when the samples are greedy already

    def report(self, model: ModelInfo, corpus: CorpusReference | None, report_dir: Path) -> dict:
        """report.json's part about the pieces: their files, keys and quality (music/evaluation.py): with
        the job's reference, the training and held-out columns beside the sampled and greedy ones, and
        each generated piece's own measures."""
        described: dict = {}
        if corpus is not None:
            described["training"] = corpus.evaluation.training
            if corpus.evaluation.held_out is not None:
                described["held_out"] = corpus.evaluation.held_out
        described["sampled"], per_piece = describe_samples(model, self.sampled, corpus, report_dir)
        if self.greedy is not None:
            described["greedy"], greedy_pieces = describe_samples(model, self.greedy, corpus, report_dir)
            per_piece += greedy_pieces
        meter = corpus.evaluation if corpus is not None and corpus.evaluation.meter is not None else None
        return {
            "samples": [p.name for p in self.sampled.paths],
            "greedy_samples": [p.name for p in self.greedy.paths] if self.greedy is not None else [],
            "keys": None if self.sampled.keys is None else [key_name(int(k)) for k in self.sampled.keys],
            # A composer-conditioned model's: the composers it learned, and each sample's (the greedy pieces
            # share their samples' primers and composers).
            "composers": None if model.composers is None else model.composers.describe(),
            "sample_composers": self.sampled.composers,
            "quality": described,
            "piece_metrics": per_piece,
            "meter": None if meter is None else {"has_meter": meter.meter, "reason": meter.meter_reason},
        }


def generate_pieces(model: TrainedModel, primers: Primers, notes: int, sampling: Sampling,
                    rng: np.random.Generator, out: Path, banned: np.ndarray | None = None, sheet_music: bool = True,
                    audio: bool = True, beat: bool = False, progress: Progress = _quiet) -> Pieces:
    """The job's and `composer generate`'s pieces: `generate` with the sampling asked for (sample-NN),
    then greedy argmax from the same primers (greedy-NN, audio but no score) to compare with."""
    sampled = generate(model, primers, notes, sampling, rng, out, banned, sheet_music, audio=audio, beat=beat,
                       progress=progress)
    greedy = None
    if not sampling.greedy:
        greedy = generate(model, primers, notes, Sampling(greedy=True), rng, out, banned, sheet_music=False,
                          prefix="greedy", audio=audio, progress=progress)
    return Pieces(sampled, greedy)


def write_audio(paths: list[Path], progress: Progress = _quiet, stage: str = "audio") -> list[Path]:
    """PREFIX-NN.ogg beside each MIDI file that has notes (a piece without any has nothing to hear)."""
    import fastparse
    from service.music.audio import render

    written = []
    for done, path in enumerate(paths):
        progress(stage, done, len(paths))
        if len(fastparse.read_notes(path)):
            render(path, path.with_suffix(".ogg"))
            written.append(path.with_suffix(".ogg"))
    return written


def choose_primers(info: ModelInfo, bank: Primers, count: int, rng: np.random.Generator,
                   key: int | None = None, composer: int | None = None) -> Primers:
    """`count` rows from the model's primer bank, from pieces in `key` (by `composer`) when it has any;
    with a key (a composer), every row is then conditioned on it. A composer-conditioned model asked for
    no composer writes as its job did: one sample per composer learned, most pieces first."""
    from service.model.composers import rows_per_composer

    if key is not None and len(in_that_key := np.flatnonzero(bank.keys == key)):
        bank = bank.take(in_that_key)
    if composer is None and info.composers is not None and bank.composers is not None:
        rows, composers = rows_per_composer(bank.composers, info.composers, count, rng)
        chosen = bank.take(rows).by_composer(composers)
        return chosen if key is None else chosen.in_key(key)
    if composer is not None and bank.composers is not None and len(
            theirs := np.flatnonzero(bank.composers == composer)):
        bank = bank.take(theirs)
    chosen = bank.take(rng.choice(len(bank.tokens), size=count))
    chosen = chosen if key is None else chosen.in_key(key)
    return chosen if composer is None else chosen.by_composer(composer)


def check_request(model_dir: Path, samples: int, primer: Path | None = None, key: str | None = None,
                  composer: str | None = None
                  ) -> tuple[ModelInfo, int | None, np.ndarray | None, int | None, Primers | None]:
    """What `generate_from_model_dir` is asked, checked against composer.json before TensorFlow loads
    (and logs to stderr), so that a wrong request is one line and nothing else: the model, the key's
    index and the key tokens it bans (banned_for_key), the composer's row (--composer's, else a --primer
    file's), the primer file's rows."""
    from service.model.composers import requested
    from service.music.keys import parse_key

    if primer is not None and not primer.is_file():
        raise UserError(f"--primer {primer} is not a file")
    key_index = None if key is None else parse_key(key)
    info = read_model_info(model_dir)
    banned = None if key_index is None else banned_for_key(info, key_index)
    who = requested(info.composers, info.spec, composer, primer)
    from_file = primer_from_midi(info, primer, samples, key_index) if primer is not None else None
    if from_file is not None and who is not None:
        from_file = from_file.by_composer(who)
    return info, key_index, banned, who, from_file


def generate_from_model_dir(model_dir: Path, out: Path, samples: int, notes: int, sampling: Sampling, seed: int,
                            primer: Path | None = None, key: str | None = None, sheet_music: bool = True,
                            audio: bool = True, composer: str | None = None,
                            progress: Progress = _quiet, before_writing: Callable[[], None] = lambda: None
                            ) -> list[Path]:
    """`composer generate`: sample from a pulled model into `out`, with greedy pieces from the same
    primers, report.json (settings and quality, against the job's corpus reference when the model
    folder has one) and report.html (the page to hear and see them, with the job's loss curve);
    `progress` is told each stage; `before_writing` runs once the model has loaded, before any file is
    written (`--force` clears the earlier pieces there: a damaged model leaves them as they were)."""
    from service.model.report import write_report
    from service.music.beat import on_transcription_clock

    info, key_index, banned, who, from_file = check_request(model_dir, samples, primer, key, composer)
    corpus = CorpusReference.load(model_dir)
    trained, bank = load_model_dir(model_dir)
    rng = np.random.default_rng(seed)
    chosen = from_file if from_file is not None else choose_primers(info, bank, samples, rng, key_index, who)
    before_writing()
    # A corpus on a transcription clock (GiantMIDI-Piano's fixed 120 bpm): samples engraved on their own beat.
    beat = corpus is not None and on_transcription_clock(corpus.evaluation.meter, info.scheme)
    pieces = generate_pieces(trained, chosen, notes, sampling, rng, out, banned, sheet_music, audio, beat, progress)
    progress("measuring", 0, 0)
    settings = {**sampling.describe(), "notes": notes, "seed": seed, "model": str(model_dir),
                # the key as every other place spells it (--key d# asks for Eb major)
                "primer": str(primer) if primer else "random training window",
                "key": None if key_index is None else key_name(key_index),
                # the name as the model knows it (--composer DEBUSSY asks for Debussy)
                "composer": info.composers.names[who] if composer is not None and info.composers else None,
                "decoder": "stateful, batched", "ms_per_step": pieces.sampled.ms_per_step}
    if corpus is not None:
        settings["corpus_excerpt_tokens"] = corpus.excerpt_tokens
    write_report(out / "report.json", {
        **pieces.report(trained, corpus, out), "settings": settings, "model_job_id": info.spec.job_id,
        "preset": info.spec.preset, "scheme": info.scheme, "key_conditioning": info.spec.key_conditioning,
        "condition": info.spec.condition, "pedal": info.spec.pedal,
    })
    _copy_loss_curve(model_dir, out)
    from service.music.page import write_page

    write_page(out)
    return pieces.sampled.paths


def _copy_loss_curve(model_dir: Path, out: Path) -> None:
    """The job's loss curve beside the report, for the page (a model folder from before jobs kept it
    there has none: the page then has no loss section)."""
    import shutil

    source, target = model_dir / LOSS_FILE, out / LOSS_FILE
    if source.is_file() and source.resolve() != target.resolve():
        shutil.copyfile(source, target)
