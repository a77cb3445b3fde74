"""Progress reporting: the library calls a ``Progress``; the CLI decides how (or whether) to show it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Protocol

Advance = Callable[[int], None]


class Progress(Protocol):
    """Receives progress from long stages; the library never prints."""

    def bar(self, description: str, total: int | None) -> contextlib.AbstractContextManager[Advance]:
        """A context whose value is called with the number of steps just finished."""
        ...

    def stage(self, name: str) -> None:
        """A pipeline stage begins."""
        ...

    def info(self, message: str) -> None:
        """A short message for the user (reuse of finished work, skipped attacks, ...)."""
        ...


class NullProgress:
    """Shows nothing; the default for API use and ``--quiet``."""

    @contextlib.contextmanager
    def bar(self, description: str, total: int | None) -> Iterator[Advance]:
        yield lambda n=1: None

    def stage(self, name: str) -> None:
        pass

    def info(self, message: str) -> None:
        pass


#: work reported by the first call within this many seconds of a bar opening counts as already done
#: (reused members, reported at once), so it does not make the pace look faster than it is
PRE_DONE_S = 0.05


class BarClock:
    """The pace of one bar since it opened, and the time left at that pace.

    Unlike a recent-window speed (rich's default, which shows ``-:--:--`` once a step takes
    longer than its 30 s window) the estimate uses everything finished since the bar opened,
    plus the finished share of steps still running (``partial``: a member's epochs within
    the pool), so it is there from the first epoch on.
    """

    def __init__(self, total: float | None, now: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self._now = now
        self.start = now()
        self.done = 0.0  # finished steps
        self.skipped = 0.0  # steps reported at once when the bar opened: done before, not by this pace
        self.partial = 0.0  # finished share of running steps
        self._calls = 0

    def advance(self, n: float = 1) -> None:
        if self._calls == 0 and self._now() - self.start < PRE_DONE_S:
            self.skipped += n
        self._calls += 1
        self.done += n

    @property
    def completed(self) -> float:
        cap = self.total if self.total is not None else float("inf")
        return min(cap, self.done + self.partial)

    def elapsed(self) -> float:
        return self._now() - self.start

    def eta(self) -> float | None:
        """Seconds left at the average pace so far; None before any work is measured or without a total."""
        worked = self.completed - self.skipped
        if self.total is None or worked <= 1e-9:
            return None
        return max(0.0, self.elapsed() / worked * (self.total - self.completed))


def format_seconds(s: float | None) -> str:
    """``1:02:03`` / ``4:05``; ``?`` when unknown."""
    if s is None:
        return "?"
    s = int(round(s))
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def unit_weight(description: str) -> int:
    """How many of its parent's steps a nested bar stands for: ``members 1, 2, 3/8 (batched)`` is 3."""
    if description.startswith("members "):
        return description.split("/", 1)[0].count(",") + 1
    return 1


class NestedBars:
    """Bars as a stack: a bar opened inside another is one of its steps (a member inside the pool).

    Its finished share counts towards the parent's ``partial``, so the pool's estimate moves
    with every epoch, not only with every finished member.
    """

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self.stack: list[tuple[str, BarClock]] = []
        self._now = now

    def open(self, description: str, total: int | None) -> BarClock:
        clock = BarClock(total, now=self._now)
        self.stack.append((description, clock))
        return clock

    def close(self, clock: BarClock) -> None:
        self.stack = [(d, c) for d, c in self.stack if c is not clock]
        self._update_partials()

    def parent(self, clock: BarClock) -> tuple[str, BarClock] | None:
        for i, (_, c) in enumerate(self.stack):
            if c is clock:
                return self.stack[i - 1] if i > 0 else None
        return None

    def _update_partials(self) -> None:
        for i, (_, c) in enumerate(self.stack):
            c.partial = 0.0
            if i + 1 < len(self.stack):
                d, child = self.stack[i + 1]
                if child.total:
                    c.partial = unit_weight(d) * child.completed / child.total

    def advanced(self) -> None:
        self._update_partials()


class LineProgress:
    """Plain lines for a log file or a pipe (stderr not a terminal), where bars would only appear at the end.

    One line per stage; one per step that finished a nested bar (each pool member, with its
    time), else at most every ``every_s`` seconds; one when a bar finishes. Each step line
    carries the bar's overall estimate.
    """

    def __init__(self, write: Callable[[str], None], every_s: float = 10.0,
                 now: Callable[[], float] = time.monotonic) -> None:
        self.write = write
        self.every_s = every_s
        self._now = now
        self._start = now()
        self._bars = NestedBars(now)
        self._finished: dict[int, list[str]] = {}  # parent clock id -> nested bars finished since its last line

    def _line(self, text: str) -> None:
        self.write(f"[{format_seconds(self._now() - self._start)}] {text}\n")

    @contextlib.contextmanager
    def bar(self, description: str, total: int | None) -> Iterator[Advance]:
        clock = self._bars.open(description, total)
        parent = self._bars.parent(clock)
        last, shown = [clock.start], [clock.completed]

        def advance(n: int = 1) -> None:
            clock.advance(n)
            self._bars.advanced()
            if parent is not None or clock.done <= clock.skipped:
                return
            children = self._finished.pop(id(clock), [])
            if children or self._now() - last[0] >= self.every_s:
                last[0] = self._now()
                self._line("; ".join([*children, self._status(description, clock)]))
                shown[0] = clock.completed

        try:
            yield advance
        finally:
            self._bars.close(clock)
            if parent is not None:
                self._finished.setdefault(id(parent[1]), []).append(
                    f"{description} done in {format_seconds(clock.elapsed())}")
            else:
                self._finished.pop(id(clock), None)
                if clock.done > clock.skipped and shown[0] < clock.completed:
                    self._line(f"{description}: {_count(clock)} in {format_seconds(clock.elapsed())}")

    def _status(self, description: str, clock: BarClock) -> str:
        eta = clock.eta()
        left = f", about {format_seconds(eta)} left" if eta is not None and clock.completed < (clock.total or 0) else ""
        return f"{description} {_count(clock)}, {format_seconds(clock.elapsed())} elapsed{left}"

    def stage(self, name: str) -> None:
        self._line(name)

    def info(self, message: str) -> None:
        self._line(message)


def _count(clock: BarClock) -> str:
    done = int(clock.done + 1e-9)
    return f"{done}/{clock.total}" if clock.total is not None else str(done)


class StageTimer:
    """Wall time per pipeline stage, for ``timing.json``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.started = time.perf_counter()

    @contextlib.contextmanager
    def __call__(self, stage: str, progress: Progress) -> Iterator[None]:
        progress.stage(stage)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start
