"""What `composer submit --wait` shows while the job runs, on stderr (stdout keeps the result).

On a terminal: one live line (Rich) with the phase, epoch N of M, loss and val_loss, the time in
this phase and, while training, at most how long is left. Anywhere else (CI, nohup, a log file):
one plain line per phase change and per epoch, each with a UTC timestamp, so a log shows where the
time went.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console

from service.client.jobs import JobState
from service.storage.joblog import stamp


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def clock(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}" if minutes >= 60 else f"{minutes}:{seconds:02d}"


@dataclass(frozen=True)
class Style:
    """How a state reads: words for logs, a tight line for the terminal."""

    epoch: str  # between the phase and "N/M"
    losses: str  # with {loss} and {val}
    times: Callable[[float], str]
    left: str  # with {left}
    join: str


PLAIN = Style(": epoch ", "loss {loss:.4f}, val_loss {val:.4f}", duration, "at most {left} left", ", ")
LIVE = Style(" ", "loss {loss:.4f}  val {val:.4f}", clock, "≤ {left} left", "  ")


def describe(state: JobState, style: Style = PLAIN) -> str:
    """`train: epoch 3/10, loss 2.3100, val_loss 2.4000, 1 min 12 s in train, at most 40 s left` (PLAIN),
    `train 3/10  loss 2.3100  val 2.4000  1:12 in train  ≤ 0:40 left` (LIVE)."""
    parts = [state.phase]
    if state.phase == "train" and state.epoch:
        parts[0] += f"{style.epoch}{state.epoch}/{state.epochs}"
        if state.loss is not None and state.val_loss is not None:
            parts.append(style.losses.format(loss=state.loss, val=state.val_loss))
    in_phase = state.phase_seconds.get(state.phase)
    if in_phase is not None and state.phase not in ("done", "failed"):
        parts.append(f"{style.times(in_phase)} in {state.phase}")
    if state.seconds_left:
        parts.append(style.left.format(left=style.times(state.seconds_left)))
    return style.join.join(parts)


class PlainProgress:
    """A line when the phase or the epoch changes (never one per poll), and one when a phase ends, with
    its time. Phases and epochs that ended between two polls get their lines too (epochs from the
    job's metrics, `epoch_rows`)."""

    def __init__(self, console: Console, job_id: str, epoch_rows: Callable[[], list[dict]]) -> None:
        self.console, self.job_id, self.epoch_rows = console, job_id, epoch_rows
        self.seen: tuple[str, str, int] | None = None
        self.epoch = 0
        self.finished: set[str] = set()  # phases whose end was told
        self.told_end = False  # the line of the phase the job failed or stopped in

    def _print(self, text: str) -> None:
        self.console.print(f"{stamp()} {self.job_id}: {text}", highlight=False, markup=False, soft_wrap=True)

    def update(self, state: JobState) -> None:
        ended = state.phase in ("failed", "stopped")
        # The phase the job failed or stopped in: the last to have run (jobstate keeps them in that order).
        last = next(reversed(state.phase_seconds), None) if ended else None
        for phase, seconds in state.phase_seconds.items():  # in the order they ran, also between polls
            if phase == state.phase or phase in self.finished:
                continue
            if phase == "train":
                self._epochs_until(state, state.epoch)
            self.finished.add(phase)
            if phase != last:  # that one's line says how it ended, below
                self._print(f"{state.state.lower()}, {phase} done in {duration(seconds)}")
        if state.phase == "train":
            self._epochs_until(state, state.epoch - 1)  # the newest epoch is the current line below
            self.epoch = max(self.epoch, state.epoch)
        if ended:
            if not self.told_end:  # once, though Ray may say RUNNING at one poll and FAILED at the next
                self.told_end = True
                where = f"{last} {state.phase} after {duration(state.phase_seconds[last])}" if last else state.phase
                self._print(f"{state.state.lower()}, {where}")  # why: the CLI's error line
            return
        now = (state.state, state.phase, state.epoch)
        if now != self.seen:
            self.seen = now
            self._print(f"{state.state.lower()}, {describe(state)}")

    def _epochs_until(self, state: JobState, last: int) -> None:
        """A line for each epoch after the last one told, up to `last`, from the job's metrics."""
        if last <= self.epoch:
            return
        for row in self.epoch_rows()[self.epoch:last]:
            self._print(f"{state.state.lower()}, train: epoch {row['epoch']}/{state.epochs}, "
                        f"loss {row['loss']:.4f}, val_loss {row['val_loss']:.4f}")
        self.epoch = last

    def close(self) -> None:
        pass


class LiveProgress:
    """One line, redrawn in place, with a bar over the epochs while training."""

    def __init__(self, console: Console, job_id: str) -> None:
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

        console.print(f"waiting for {job_id} (Ctrl-C stops the waiting, not the job)", highlight=False)
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.fields[state]:9}"), BarColumn(bar_width=16),
                                 TextColumn("{task.fields[detail]}"), console=console, transient=False)
        self.task = self.progress.add_task(job_id, total=None, state="pending", detail="queued")
        self.progress.start()

    def update(self, state: JobState) -> None:
        training = state.phase == "train" and state.epochs
        self.progress.update(self.task, total=state.epochs if training else None,
                             completed=state.epoch if training else 0, state=state.state.lower(),
                             detail=describe(state, LIVE))

    def close(self) -> None:
        self.progress.stop()
