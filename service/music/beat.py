"""The beat of a performance on a transcription clock, for engraving it.

A transcription (GiantMIDI-Piano: every file on a fixed 120 bpm 4/4 clock) has its onsets anywhere in
that clock's beat, so engraved on it a piece is a thicket of sixteenth rests and ties. Here the beat is
found from the onsets themselves, in numpy, the way audio beat trackers do (Ellis, "Beat tracking by
dynamic programming", JNMR 2007; librosa's ``beat_track``):

1. an onset-strength signal: every note onset a narrow Gaussian on a FRAME-second grid (a chord, many
   notes at once, weighs more);
2. the tempo: the signal's autocorrelation over the lags of MIN_BPM..MAX_BPM quarter notes, weighted by
   a log-normal tempo prior (centre PRIOR_BPM, width PRIOR_OCTAVES): the strongest periodicity of a
   musical tempo, not the finest grid (a faster tempo would fit any onsets better, trivially); a pulse
   slower than MIN_BPM, with no periodicity in range, is halved into it;
3. the beats: the sequence of times that lands on strong onsets while keeping each step near that
   period (dynamic programming, each step's penalty TIGHTNESS * log(step / period)^2), so a rubato
   performance keeps its beat where one fixed grid would drift off it within bars.

``Beat.quarters`` maps performance seconds to score quarter notes (linear between the tracked beats);
only the engraving uses it: the MIDI file and its audio keep the performance's timing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_BPM, MAX_BPM = 40.0, 200.0
"""The musical range of quarter-note tempi a beat is looked for in."""

PRIOR_BPM, PRIOR_OCTAVES = 120.0, 1.0
"""The tempo prior (log-normal, as librosa's ``start_bpm`` and ``std_bpm``): a preference among the
periodicities of one piece (quarter against eighth or half), not a pull towards the transcription clock."""

FRAME = 0.005
"""Seconds per frame of the onset signal and of the tracked beats."""

MIN_LAG, MAX_LAG = int(np.floor(60.0 / MAX_BPM / FRAME)), int(np.ceil(60.0 / MIN_BPM / FRAME))
"""The beat periods looked at, in frames."""

ONSET_WIDTH = 0.02
"""Seconds: each onset's Gaussian's standard deviation (a pianist's chord is spread over tens of ms)."""

TIGHTNESS = 100.0
"""How strongly a beat step keeps to the period (librosa's default): the weight of log(step / period)^2."""

MIN_ONSETS = 4
"""Fewer distinct onsets than this give no beat (``estimate_beat`` returns None): too few to see a period in."""


@dataclass(frozen=True, eq=False)
class Beat:
    """Quarter-note beats in performance seconds: ``times`` increasing (at least two); ``bpm`` the tempo
    written in the score (60 / the mean beat step); ``phase`` the first beat's time."""

    times: np.ndarray

    @classmethod
    def fixed(cls, bpm: float, phase: float, end: float) -> Beat:
        """A constant clock: a beat every 60 / bpm seconds from `phase` until past `end`."""
        period = 60.0 / bpm
        return cls(phase + period * np.arange(max(2, int(np.ceil((end - phase) / period)) + 2)))

    @property
    def period(self) -> float:
        """The mean beat step in seconds: the piece's tempo as a whole (beats counted over its time)."""
        return float((self.times[-1] - self.times[0]) / (len(self.times) - 1))

    @property
    def bpm(self) -> float:
        return 60.0 / self.period

    @property
    def phase(self) -> float:
        return float(self.times[0])

    def quarters(self, seconds: np.ndarray) -> np.ndarray:
        """Score quarter notes of performance times: beat k is quarter k, linear between beats, the mean
        period before the first beat and after the last."""
        seconds = np.asarray(seconds, dtype=np.float64)
        inside = np.interp(seconds, self.times, np.arange(len(self.times), dtype=np.float64))
        before = (seconds - self.times[0]) / self.period
        after = len(self.times) - 1 + (seconds - self.times[-1]) / self.period
        return np.where(seconds < self.times[0], before, np.where(seconds > self.times[-1], after, inside))

    def seconds(self, quarters: np.ndarray) -> np.ndarray:
        """The inverse of ``quarters``."""
        quarters = np.asarray(quarters, dtype=np.float64)
        last = len(self.times) - 1
        inside = np.interp(quarters, np.arange(len(self.times), dtype=np.float64), self.times)
        before = self.times[0] + quarters * self.period
        after = self.times[-1] + (quarters - last) * self.period
        return np.where(quarters < 0, before, np.where(quarters > last, after, inside))


def onset_signal(onsets: np.ndarray) -> np.ndarray:
    """Every onset a Gaussian of ONSET_WIDTH on the FRAME grid from time 0 (onsets in seconds, >= 0)."""
    half = int(np.ceil(4 * ONSET_WIDTH / FRAME))
    frames = int(np.ceil(onsets.max() / FRAME)) + half + 1
    impulses = np.bincount(np.rint(onsets / FRAME).astype(np.int64), minlength=frames).astype(np.float64)
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) * FRAME / ONSET_WIDTH) ** 2)
    return np.convolve(impulses, kernel, mode="same")


def tempo_period(signal: np.ndarray) -> float:
    """The beat period in frames: the lag of MIN_BPM..MAX_BPM where the signal's autocorrelation, weighted
    by the tempo prior, peaks (refined between frames by a parabola through the peak)."""
    centred = signal - signal.mean()
    n = 1 << int(np.ceil(np.log2(2 * len(centred))))
    spectrum = np.fft.rfft(centred, n)
    ac = np.fft.irfft(spectrum * np.conj(spectrum), n)[: len(centred)]
    # A piece shorter than the longest period: no correlation at the lags past its end.
    ac = np.pad(ac, (0, max(0, MAX_LAG + 1 - len(ac))))
    lags = np.arange(MIN_LAG, MAX_LAG + 1)
    bpm = 60.0 / (lags * FRAME)
    weighted = ac[lags] * np.exp(-0.5 * (np.log2(bpm / PRIOR_BPM) / PRIOR_OCTAVES) ** 2)
    i = int(np.argmax(weighted))
    if weighted[i] <= 0:
        # No periodicity in range at all (a pulse slower than MIN_BPM: every lag in range falls between
        # its onsets). Weighting negative correlations by the prior favours where the prior is weakest,
        # the ends of the range: take the strongest lag up to four times longer instead, halved into
        # range (a steady 30 bpm is beaten at 60, one onset a half note).
        longer = np.arange(MAX_LAG + 1, min(len(ac), 4 * MAX_LAG + 1))
        if len(longer) and ac[best := longer[int(np.argmax(ac[longer]))]] > 0:
            return float(best / 2 ** np.ceil(np.log2(best / MAX_LAG)))
    if 0 < i < len(lags) - 1:
        a, b, c = weighted[i - 1 : i + 2]
        denominator = a - 2 * b + c
        if denominator < 0:
            return float(lags[i] + 0.5 * (a - c) / denominator)
    return float(lags[i])


def track(signal: np.ndarray, period: float) -> np.ndarray:
    """Beat frames by dynamic programming: score(t) = signal(t) + max over steps s in [period / 2, 2 period]
    of score(t - s) - TIGHTNESS * log(s / period)^2; the best path back from the best late frame.

    Frames are done in blocks of period / 2: every predecessor of a block lies before it, so a block is
    one vectorised max."""
    local = signal / (signal.std() or 1.0)
    steps = np.arange(int(np.floor(period / 2)), int(np.ceil(2 * period)) + 1)
    penalty = -TIGHTNESS * np.log(steps / period) ** 2
    score = local.copy()
    back = np.full(len(local), -1, dtype=np.int64)
    block = max(1, int(steps[0]))
    for start in range(int(steps[0]), len(local), block):
        t = np.arange(start, min(start + block, len(local)))
        before = t[:, None] - steps[None, :]
        candidates = np.where(before >= 0, score[np.maximum(before, 0)] + penalty[None, :], -np.inf)
        best = np.argmax(candidates, axis=1)
        gain = candidates[np.arange(len(t)), best]
        # A beat with no beat before it scores its onset alone; one after a beat adds that path.
        take = gain > 0
        score[t] = local[t] + np.where(take, gain, 0.0)
        back[t] = np.where(take, before[np.arange(len(t)), best], -1)
    # End on the best-scoring frame of the last period (a path ending earlier misses the last beats).
    tail = np.arange(max(0, len(local) - int(np.ceil(period))), len(local))
    frame = int(tail[np.argmax(score[tail])])
    beats = [frame]
    while back[frame] >= 0:
        frame = int(back[frame])
        beats.append(frame)
    return np.array(beats[::-1], dtype=np.float64)


def estimate_beat(onsets: np.ndarray) -> Beat | None:
    """The quarter-note beat of a performance from its note onsets (seconds, one per note, any order);
    None with fewer than MIN_ONSETS distinct onsets (the caller keeps the file's own clock)."""
    onsets = np.asarray(onsets, dtype=np.float64)
    onsets = onsets[np.isfinite(onsets)]
    if len(np.unique(np.rint(onsets / FRAME))) < MIN_ONSETS:
        return None
    origin = float(onsets.min())
    signal = onset_signal(onsets - origin)
    period = tempo_period(signal)
    frames = track(signal, period)
    if len(frames) < 2:  # a piece shorter than a beat: its one beat and the period
        frames = np.array([frames[0], frames[0] + period])
    return Beat(origin + frames * FRAME)


def grid_distance(beat: Beat, onsets: np.ndarray, division: int = 4) -> np.ndarray:
    """Each onset's distance in seconds of the performance to the nearest point of the beat's grid of
    `division` steps a quarter note (4: the engraving's sixteenths): how far quantizing moves it."""
    onsets = np.asarray(onsets, dtype=np.float64)
    return np.abs(onsets - beat.seconds(np.round(beat.quarters(onsets) * division) / division))


def on_transcription_clock(meter: bool | None, scheme: str) -> bool:
    """Whether a model's pieces are engraved on the beat estimated from their onsets: its corpus has no
    meter (``evaluation.corpus_meter``: onsets anywhere in the file's beat, a transcription clock) and its
    scheme keeps the rhythm (notes-chords, also without a meter, writes every token half a quarter after
    the last: its own clock is exact). Not known (None, a model folder from before the meter was kept):
    the file's clock, as before."""
    return meter is False and scheme != "notes-chords"
