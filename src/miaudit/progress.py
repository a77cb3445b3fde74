"""Progress reporting: the library calls a ``Progress``; the CLI decides how (or whether) to show it."""

from __future__ import annotations

import contextlib
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
