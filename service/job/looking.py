"""A look at the cluster repeated in the background while a job trains (orphans.py, room.py): best
effort, so a look that fails is made again at the next turn, and the job never waits long for one."""

from __future__ import annotations

import threading
from collections.abc import Callable


def repeat(look: Callable[[threading.Event], bool], every: float, name: str, join_s: float) -> Callable[[], None]:
    """Calls `look(stop)` every `every` seconds in a daemon thread until it returns True or the returned
    function is called; that function stops the thread and waits at most `join_s` for a look in flight (a
    stuck one is a daemon thread, left). `look` gets the stop event, to say nothing once it is set."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every):
            try:
                if look(stop):
                    return
            except Exception:  # noqa: BLE001 - best effort: look again next time
                continue

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()

    def stopped() -> None:
        stop.set()
        thread.join(timeout=join_s)

    return stopped
