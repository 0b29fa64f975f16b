"""Progress of long work, the same for every command.

On a terminal a task is a live line (description, bar, done/total, the caller's detail, elapsed and
time left) that disappears when the task ends, so the command's own report stays as it was. Where
stderr is not a terminal (a log file, CI, a notebook) a plain line is printed once the task has run
`PLAIN_EVERY_S` seconds and then at that interval (a task without steps, such as a library call
edgeseg waits on, is reported by a timer): a long epoch in a log is never silent, a short one adds
nothing. `quiet` shows nothing at all.

`silenced_stdout()` keeps a library's own progress bars (NNCF's "Statistics collection") off the
user's output while edgeseg's task stands for that work.
"""

from __future__ import annotations

import contextlib
import io
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from edgeseg._text import console as literal_console

__all__ = ["PLAIN_EVERY_S", "Task", "clock", "silenced_stdout", "track"]

PLAIN_EVERY_S = 30.0  # seconds between two plain progress lines where stderr is no terminal


def clock(seconds: float | None) -> str:
    """`seconds` as m:ss or h:mm:ss; "-:--" when unknown."""
    if seconds is None or seconds != seconds or seconds < 0 or seconds == float("inf"):
        return "-:--"
    s = round(seconds)
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Task:
    """One piece of long work: `update(done, detail)` as it goes; see `track`."""

    def __init__(self, what: str, total: int | None, live: Any, plain: Any) -> None:
        self.what, self.total = what, total
        self.done = 0
        self.detail = ""
        self.started = time.perf_counter()
        self._live, self._plain = live, plain  # a rich Progress and its task id, or a console
        self._task_id = live.add_task(what, total=total, detail="", left="") if live is not None else None
        self._last_line = self.started
        self._stop = threading.Event()
        if plain is not None and total is None:  # no steps to report on: a timer says it still runs
            threading.Thread(target=self._heartbeat, name="edgeseg-progress", daemon=True).start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(max(PLAIN_EVERY_S, 0.05)):
            self.update()

    def close(self, say_done: bool = False) -> None:
        """Stop the timer of a task without steps; with `say_done`, a plain task that ran at least
        the interval ends its lines with a "done" line (a log shows where the stage ended)."""
        self._stop.set()
        if say_done and self._plain is not None and self.elapsed >= PLAIN_EVERY_S:
            self._plain.print(f"{self.what}: done ({clock(self.elapsed)})", soft_wrap=True)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def remaining(self) -> float | None:
        """Seconds left at the rate so far; None before the first unit is done or without a total."""
        if not self.total or self.done <= 0:
            return None
        return self.elapsed / self.done * max(self.total - self.done, 0)

    def update(self, done: int | None = None, detail: str | None = None) -> None:
        """Record progress: `done` units of `total` so far, and the text shown beside the bar."""
        if done is not None:
            self.done = done
        if detail is not None:
            self.detail = detail
        if self._live is not None:
            left = self.remaining()
            shown_left = f"{clock(left)} left" if left is not None else ""
            self._live.update(self._task_id, completed=self.done, detail=self.detail, left=shown_left)
        elif self._plain is not None and time.perf_counter() - self._last_line >= PLAIN_EVERY_S:
            self._last_line = time.perf_counter()
            self._plain.print(self.line(), soft_wrap=True)

    def advance(self, n: int = 1, detail: str | None = None) -> None:
        """`update` by `n` more units."""
        self.update(self.done + n, detail)

    def line(self) -> str:
        """The plain progress line: what, done/total, detail, elapsed and time left."""
        detail = f"  {self.detail}" if self.detail else ""
        if not self.total:
            return f"{self.what}:{detail}  ({clock(self.elapsed)} elapsed)"
        left = clock(self.remaining())
        return f"{self.what}: {self.done}/{self.total}{detail}  ({clock(self.elapsed)} elapsed, {left} left)"


@contextlib.contextmanager
def track(
    what: str, total: int | None = None, *, quiet: bool = False, say_done: bool = False
) -> Iterator[Task]:
    """A `Task` for the duration of the block, shown on stderr as the module notes say; `say_done`:
    see `Task.close`."""

    if quiet:
        yield Task(what, total, None, None)
        return
    console = literal_console(stderr=True)
    if not console.is_terminal:
        task = Task(what, total, None, console)
        try:
            yield task
        finally:
            task.close(say_done)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    live = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn() if total else TextColumn(""),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[left]}"),
        console=console,
        transient=True,
    )
    with live:
        yield Task(what, total, live, None)


@contextlib.contextmanager
def silenced_stdout() -> Iterator[None]:
    """Swallow what a library prints to stdout (its own progress bars) for the block.

    For single-threaded command work only: `sys.stdout` is process-wide.
    """
    with contextlib.redirect_stdout(io.StringIO()):
        yield
    sys.stdout.flush()
