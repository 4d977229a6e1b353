"""Augmentation while training: each training window transposed (every scheme) and, where the tokens
carry time as TimeShift tokens (the performance scheme), stretched in time.

`--augment` (JobSpec.augment) names what is on: `none`, `transpose`, `stretch` or `transpose,stretch`
(the default), each with an optional amount: `transpose=SEMITONES` (default 3: up to 3 semitones down
or up), `stretch=FRACTION` (default 0.05: 5% slower or faster).

The draw is a pure function of (seed, global batch number), made for the whole global batch and then
sliced like the windows (model/windows.py: make_dataset): so N workers together draw what one worker
draws, and a resumed run draws what the lost one would have, with nothing to checkpoint. Row r of
global batch t gets a shift uniform in -T..T and a stretch factor uniform in [1 - S, 1 + S].

A row whose drawn shift would move a token out of the vocabulary (or a pitch off the piano) takes the
nearest shift towards 0 that keeps every token of the row (0 always does): per-shift id -> id tables
(music/transpose.py) make that a numpy gather per batch. Stretching maps each TimeShift_k to about
k * factor, carrying the rounding error along the row so that the row's time does not drift, clamped
to 1..100 and snapped to a TimeShift the vocabulary has; the token count never changes. (The clamp is
where the time can drift: a wait of 1 s stretched slower cannot grow, nor one of 10 ms stretched faster
shrink, and what it could not take is carried on to the row's next wait, or lost at the row's end.) Validation
and test pieces are never augmented: their losses measure the music as it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from service.errors import UserError
from service.music.transpose import MAX_TIME_SHIFT, augmentation_in_words, shift_tables, time_shift_steps

DEFAULT = "transpose,stretch"
CHOICES = ("none", "transpose", "stretch", "transpose,stretch")
DEFAULT_SEMITONES = 3
DEFAULT_STRETCH = 0.05
MAX_SEMITONES = 12  # an octave each way: further moves only push more rows off the piano
MAX_STRETCH = 0.5
_SALT = 0x6175676D  # "augm": keeps this stream apart from any other draw seeded by the job's seed


@dataclass(frozen=True)
class Augmentation:
    """What is drawn: shifts in -transpose..transpose semitones, factors in [1 - stretch, 1 + stretch]
    (0: that part off)."""

    transpose: int = 0
    stretch: float = 0.0

    def text(self) -> str:
        """The canonical spelling (what JobSpec.augment stores)."""
        parts = []
        if self.transpose:
            parts.append("transpose" if self.transpose == DEFAULT_SEMITONES else f"transpose={self.transpose}")
        if self.stretch:
            parts.append("stretch" if self.stretch == DEFAULT_STRETCH else f"stretch={self.stretch!r}")
        return ",".join(parts) or "none"


def _refuse(text: str, why: str = "") -> UserError:
    return UserError(f"--augment {text!r} {why or 'is not an augmentation'}: choose one of {', '.join(CHOICES)} "
                     f"(amounts: transpose=SEMITONES up to {MAX_SEMITONES}, default {DEFAULT_SEMITONES}; "
                     f"stretch=FRACTION up to {MAX_STRETCH:g}, default {DEFAULT_STRETCH:g})")


def parse(text: str) -> Augmentation:
    """`none`, or `transpose[=SEMITONES]` and/or `stretch[=FRACTION]` joined by commas; UserError (one line
    naming the choices) otherwise."""
    parts = [part.strip().lower() for part in text.split(",")]
    if parts == ["none"]:
        return Augmentation()
    found: dict[str, str | None] = {}
    for part in parts:
        name, equals, amount = part.partition("=")
        if name not in ("transpose", "stretch") or name in found or (equals and not amount):
            raise _refuse(text)
        found[name] = amount or None
    # Plain decimals only: int() and float() also read "٣" as 3 and "1_0" as 10. A negative one is a
    # number out of range (said so below), not "not a number".
    if not all(a is None or re.fullmatch(r"-?(\d+(\.\d*)?|\.\d+)(e[-+]?\d+)?", a, re.ASCII) for a in found.values()):
        raise _refuse(text, "has an amount that is not a number")
    if found.get("transpose") and not re.fullmatch(r"-?\d+", found["transpose"] or "", re.ASCII):
        raise _refuse(text, f"transposes by {found['transpose']}: give the semitones as a whole number, such as 2")
    try:
        semitones = int(found.get("transpose") or DEFAULT_SEMITONES) if "transpose" in found else 0
        stretch = float(found.get("stretch") or DEFAULT_STRETCH) if "stretch" in found else 0.0
    except ValueError:  # more digits than int() reads: far out of range
        raise _refuse(text, f"transposes by more than {MAX_SEMITONES} semitones") from None
    if "transpose" in found and not 1 <= semitones <= MAX_SEMITONES:
        raise _refuse(text, f"transposes by {semitones} semitones")
    if "stretch" in found and not 0 < stretch <= MAX_STRETCH:
        raise _refuse(text, f"stretches by {stretch!r}")
    return Augmentation(semitones, stretch)


def canonical(text: str) -> str:
    """The stored spelling of an --augment value (so `stretch,transpose` equals the default on --resume)."""
    return parse(text).text()


def used(text: str, vocab: list[str]) -> Augmentation:
    """What a job with this setting and this corpus vocabulary actually does: stretching needs
    TimeShift tokens (only the performance scheme has them)."""
    wanted = parse(text)
    stretch = wanted.stretch if time_shift_steps(vocab).any() else 0.0
    return Augmentation(wanted.transpose, stretch)


def report(text: str, vocab: list[str]) -> dict:
    """report.json's `augment`: the setting, and what was applied to the training windows."""
    done = used(text, vocab)
    body: dict = {"setting": text, "transpose_semitones": done.transpose, "time_stretch": done.stretch}
    if parse(text).stretch and not done.stretch:
        body["note"] = "no time stretch: the scheme has no TimeShift tokens (only the performance scheme does)"
    return body


def describe(text: str, vocab: list[str]) -> str:
    """One line for the workers' log: what the training windows get."""
    done = used(text, vocab)
    return augmentation_in_words(done.transpose, done.stretch)


def draw(seed: int, step: int, batch: int, settings: Augmentation) -> tuple[np.ndarray, np.ndarray]:
    """(shift in semitones, stretch factor) of every row of global batch `step`: a pure function of
    (seed, step). Both are always drawn, so turning one off leaves the other's draw as it was."""
    uniform = np.random.default_rng([_SALT, seed & 0xFFFFFFFFFFFFFFFF, step]).random((2, batch))
    shifts = np.floor(uniform[0] * (2 * settings.transpose + 1)).astype(np.int32) - settings.transpose
    factors = 1.0 + (2.0 * uniform[1] - 1.0) * settings.stretch
    return shifts, factors


def transpose_rows(windows: np.ndarray, shifts: np.ndarray, tables: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row moved by its shift, or by the nearest shift towards 0 that keeps every token of the row
    in the vocabulary and on the piano; (the rows, the shifts applied)."""
    reach = (len(tables) - 1) // 2
    rows = np.arange(len(windows))
    moved = tables[:, windows]  # (shifts, rows, time): every shift of every token, -1 where there is none
    valid = (moved >= 0).all(axis=2)  # (shifts, rows)
    toward_zero = np.maximum(np.abs(shifts)[:, None] - np.arange(reach + 1)[None, :], 0) * np.sign(shifts)[:, None]
    first_valid = valid[toward_zero + reach, rows[:, None]].argmax(axis=1)  # the last candidate, 0, is valid
    applied = toward_zero[rows, first_valid].astype(np.int32)
    return moved[applied + reach, rows], applied


def stretch_rows(windows: np.ndarray, factors: np.ndarray, steps: np.ndarray, snap: np.ndarray,
                 ids: np.ndarray) -> np.ndarray:
    """Each row's TimeShift tokens scaled by its factor, the rounding error carried to the row's next
    TimeShift so that its total time stays within a step of the exact one (but for what the 1..100 clamp
    holds back: carried on the same way, or lost at the row's end). `steps`: each id's k (0: not
    a TimeShift); `snap[k]`: the nearest k the vocabulary has; `ids[k]`: the id of TimeShift_k."""
    out = windows.copy()
    shift = steps[windows]
    error = np.zeros(len(windows))
    for column in np.flatnonzero(shift.any(axis=0)):  # time runs along the row: one column at a time
        k = shift[:, column]
        target = k * factors + error
        new = snap[np.clip(np.rint(target), 1, MAX_TIME_SHIFT).astype(np.int64)]
        has = k > 0
        error = np.where(has, target - new, error)
        out[:, column] = np.where(has, ids[new], out[:, column])
    return out


class Augmenter:
    """A job's augmentation over its corpus vocabulary: the tables once, then `apply` per batch."""

    def __init__(self, settings: Augmentation, vocab: list[str], seed: int) -> None:
        self.settings, self.seed = settings, seed
        self.tables = shift_tables(vocab, settings.transpose) if settings.transpose else None
        steps = time_shift_steps(vocab)
        self.steps = steps if settings.stretch and steps.any() else None
        if self.steps is not None:
            present = np.flatnonzero(np.bincount(steps, minlength=MAX_TIME_SHIFT + 1)[1:]) + 1
            self.ids = np.full(MAX_TIME_SHIFT + 1, -1, dtype=np.int32)
            self.ids[steps[steps > 0]] = np.flatnonzero(steps > 0)
            wanted = np.arange(MAX_TIME_SHIFT + 1)
            self.snap = present[np.abs(wanted[:, None] - present[None, :]).argmin(axis=1)]

    @property
    def on(self) -> bool:
        return self.tables is not None or self.steps is not None

    def apply(self, windows: np.ndarray, step: int, batch: int, part: int, parts: int) -> tuple[np.ndarray,
                                                                                                  np.ndarray]:
        """Slice `part` of `parts` of global batch `step` (`batch` rows), augmented; (windows, the shift
        applied to each row, for the key of a key-conditioned model)."""
        shifts, factors = draw(self.seed, step, batch, self.settings)
        share = batch // parts
        shifts, factors = shifts[part * share:(part + 1) * share], factors[part * share:(part + 1) * share]
        windows = np.asarray(windows)
        applied = np.zeros(len(windows), dtype=np.int32)
        if self.tables is not None:
            windows, applied = transpose_rows(windows, shifts, self.tables)
        if self.steps is not None:
            windows = stretch_rows(windows, factors, self.steps, self.snap, self.ids)
        return windows.astype(np.int32, copy=False), applied

    def tf_apply(self, window, step, part, parts: int, batch: int):
        """`apply` inside a tf.data map (tensors in and out, shapes kept)."""
        import tensorflow as tf

        def run(w, s, p):
            return self.apply(w, int(s), batch, int(p), parts)

        out, shifts = tf.numpy_function(run, [window, step, part], (tf.int32, tf.int32), stateful=False)
        out.set_shape(window.shape)
        shifts.set_shape(window.shape[:1])
        return out, shifts


def for_job(text: str, vocab: list[str], seed: int) -> Augmenter | None:
    """The job's augmenter, None when nothing applies to this corpus."""
    augmenter = Augmenter(used(text, vocab), vocab, seed)
    return augmenter if augmenter.on else None
