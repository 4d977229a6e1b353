"""What `composer generate` shows while it works (client/generate_progress.py): off a terminal a line a
stage, never one a step; on a terminal one live line with the stage's count, gone when it closes. The
real CLI's lines are checked in test_generate_cli.py; here the terminal, which a test's pipe is not."""

from __future__ import annotations

import io
import re

from rich.console import Console

from service.client.generate_progress import LiveGenerateProgress, PlainGenerateProgress, shown

# model/generate.py's calls for 2 pieces of 300 notes with sheet music, without audio
CALLS = ([("sampling", n, 300) for n in range(0, 301, 10)] + [("engraving", 0, 2), ("engraving", 1, 2)]
         + [("greedy", n, 300) for n in range(0, 301, 30)] + [("measuring", 0, 0)])


def test_off_a_terminal_a_line_a_stage():
    text = io.StringIO()
    progress = PlainGenerateProgress(Console(file=text, force_terminal=False, width=200), 2)
    for call in CALLS:
        progress(*call)
    progress.close()
    lines = text.getvalue().splitlines()
    assert [line.split(" generate: ")[1] for line in lines] == [
        "sampling 2 pieces of 300 notes", "engraving 2 pieces as sheet music",
        "greedy pieces (the paper's argmax), 300 notes each", "measuring the pieces and writing the report"]
    assert "\x1b" not in text.getvalue()


def test_on_a_terminal_one_live_line_with_the_count():
    text = io.StringIO()
    console = Console(file=text, force_terminal=True, width=120)
    progress = shown(console, 1)
    assert isinstance(progress, LiveGenerateProgress)
    progress("sampling", 0, 300)
    progress("sampling", 150, 300)
    progress.progress.refresh()
    shown_now = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text.getvalue())
    assert "sampling 1 piece of 300 notes" in shown_now and "150/300 notes" in shown_now
    progress("measuring", 0, 0)
    progress.progress.refresh()
    last = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text.getvalue().split("\r")[-1])
    assert "measuring the pieces" in last and "/" not in last.split("report")[1]  # no count for it
    progress.close()
    # transient: the line is cleared, so the result line that follows stands alone
    assert text.getvalue().endswith("\r\x1b[1A\x1b[2K")  # up to the live line, erased
