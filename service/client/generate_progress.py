"""What `composer generate` shows while it works, on stderr (stdout keeps its result line).

A long generation is mostly not sampling: 4 pieces of 2,000 notes sample in seconds, then take tens
of seconds to engrave and to render as audio, and the user saw nothing meanwhile. On a terminal: one
live line (Rich), redrawn in place, with the stage, a bar over its notes or pieces and the time in
it, gone when the pieces are written. Anywhere else (a script, a log file): one line per stage with
a UTC timestamp, as `submit --wait` writes its phases (client/progress.py), so a log shows where the
time went.

The stages are model/generate.py's `Progress` calls: (stage, done, total).
"""

from __future__ import annotations

from rich.console import Console

from service.storage.joblog import count, stamp


def pieces(n: int) -> str:
    return count(n, "piece")


# Each stage in words, from its total (notes a piece while sampling, else pieces) and the pieces asked for.
STAGES = {
    "sampling": lambda total, n: f"sampling {pieces(n)} of {total} notes",
    "greedy": lambda total, n: f"greedy pieces (the paper's argmax), {total} notes each",
    "engraving": lambda total, n: f"engraving {pieces(total)} as sheet music",
    "audio": lambda total, n: f"rendering the audio of {pieces(total)}",
    "greedy-audio": lambda total, n: f"rendering the audio of the {pieces(total).replace(' ', ' greedy ')}",
    "measuring": lambda total, n: "measuring the pieces and writing the report",
}
UNITS = {"sampling": "notes", "greedy": "notes"}


def line(stage: str, total: int, samples: int) -> str:
    """A stage in words: `sampling 4 pieces of 2000 notes`, `engraving 4 pieces as sheet music`."""
    return STAGES[stage](total, samples) if stage in STAGES else stage


class PlainGenerateProgress:
    """A line when the stage changes, never one per step."""

    def __init__(self, console: Console, samples: int) -> None:
        self.console, self.samples = console, samples
        self.stage: tuple[str, int] | None = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if (stage, total) == self.stage:
            return
        self.stage = (stage, total)
        self.console.print(f"{stamp()} generate: {line(stage, total, self.samples)}", highlight=False, markup=False,
                           soft_wrap=True)

    def close(self) -> None:
        pass


class LiveGenerateProgress:
    """One line, redrawn in place at most ten times a second (Rich's refresh), with a bar over the stage's
    notes or pieces; removed when closed."""

    def __init__(self, console: Console, samples: int) -> None:
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.samples = samples
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=16),
                                 TextColumn("{task.fields[count]}"), TimeElapsedColumn(), console=console,
                                 transient=True)
        self.task = None
        self.stage: tuple[str, int] | None = None
        self.progress.start()

    def __call__(self, stage: str, done: int, total: int) -> None:
        if (stage, total) != self.stage:  # a new stage: a new task, so that its clock starts at zero
            self.stage = (stage, total)
            if self.task is not None:
                self.progress.remove_task(self.task)
            self.task = self.progress.add_task(line(stage, total, self.samples), total=total or None, count="")
        # `820/2000 notes`, `1/4 pieces`; nothing for a stage without a count (its bar pulses)
        count = f"{done}/{total} {UNITS.get(stage, 'pieces')}" if total else ""
        self.progress.update(self.task, completed=done, count=count)

    def close(self) -> None:
        self.progress.stop()


def shown(console: Console, samples: int) -> PlainGenerateProgress | LiveGenerateProgress:
    """The live line on a terminal, plain lines elsewhere."""
    return LiveGenerateProgress(console, samples) if console.is_terminal else PlainGenerateProgress(console, samples)
