"""Failpoints: named places where a test can make a run die, to prove that it resumes.

The pipeline calls ``hit(name)`` at each stage boundary, in the middle of stages and inside the
atomic writer. Nothing happens unless the environment variable ``MIAUDIT_FAILPOINT`` names that
place (the cost is one environment look-up). Its value is a comma-separated list of
``NAME`` or ``NAME=ACTION``:

- ``kill`` (the default): the process sends itself SIGKILL, as a crash or the OOM killer would;
  nothing is cleaned up.
- ``kill-once:<marker file>``: SIGKILL only in the first process to get there (it creates the
  marker); later hits pass. For retries: a Ray task that dies once and is run again.
- ``pause``: write ``miaudit failpoint NAME: paused`` to stderr and sleep (up to an hour), so a
  test can send a signal (Ctrl-C) at a known point.
- ``enospc`` / ``eacces``: raise ``OSError(ENOSPC)`` (a full disk) or ``OSError(EACCES)``
  (permission denied, which ``chmod`` cannot simulate for root).

Names used by miaudit:

``after-data``, ``after-training``, ``after-signals``, ``after-attacks``, ``after-analysis``,
``before-results``
    stage boundaries of ``runner._run``
``member-done``
    after a pool member's weights and sidecar are written
``signals-part``
    after a pool member's signals part is written
``ray-task``
    at the start of each Ray task (``executors_ray``), in the worker process
``worker-start``
    as a ``runtime.workers`` process starts (``executors._init_worker``), before it loads torch
``mid-write:<file name>``
    inside the atomic writer, after the temporary file is complete, before it is renamed to
    ``<file name>`` (e.g. ``mid-write:results.json``)

Example: ``MIAUDIT_FAILPOINT=member-done miaudit run ...`` dies after the first member finishes.
"""

from __future__ import annotations

import errno
import os
import signal
import time

ENV = "MIAUDIT_FAILPOINT"
ERRORS = {"enospc": errno.ENOSPC, "eacces": errno.EACCES}
ACTIONS = ("kill", "kill-once:<marker>", "pause", *ERRORS)


def hit(name: str) -> None:
    """Act on failpoint ``name`` if ``MIAUDIT_FAILPOINT`` names it; otherwise do nothing."""
    spec = os.environ.get(ENV)
    if spec:
        _fire(name, spec)


def _fire(name: str, spec: str) -> None:
    for item in spec.split(","):
        point, _, action = item.strip().partition("=")
        if point != name:
            continue
        action = action or "kill"
        if action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif action.startswith("kill-once:"):
            try:
                fd = os.open(action.partition(":")[2], os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                continue
            os.close(fd)
            os.kill(os.getpid(), signal.SIGKILL)
        elif action == "pause":
            os.write(2, f"miaudit failpoint {name}: paused\n".encode())
            time.sleep(3600)
        elif action in ERRORS:
            raise OSError(ERRORS[action], os.strerror(ERRORS[action]))
        else:
            raise ValueError(f"{ENV}: unknown action {action!r} for {name!r}; choose one of {', '.join(ACTIONS)}")
