"""Failpoints: nothing happens unless MIAUDIT_FAILPOINT names the place; its actions in-process.
(kill and pause are exercised on real runs: integration/test_crash_resume.py, test_bad_input*.py.)"""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest

from miaudit.failpoints import ENV, hit


def test_unnamed_places_pass(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    hit("after-data")
    monkeypatch.setenv(ENV, "after-training,member-done=enospc")
    hit("after-data")  # another place: nothing happens
    hit("mid-write:results.json")


def test_error_actions_raise_the_os_error(monkeypatch):
    monkeypatch.setenv(ENV, "after-data=kill, mid-write:results.json=enospc,member-done=eacces")
    with pytest.raises(OSError) as exc:
        hit("mid-write:results.json")
    assert exc.value.errno == errno.ENOSPC
    with pytest.raises(PermissionError):
        hit("member-done")


def test_an_unknown_action_names_the_choices(monkeypatch):
    monkeypatch.setenv(ENV, "after-data=explode")
    with pytest.raises(ValueError, match="unknown action 'explode' for 'after-data'; choose one of kill"):
        hit("after-data")


def test_kill_once_kills_only_the_first_process_to_get_there(tmp_path):
    marker = tmp_path / "marker"
    env = {**os.environ, ENV: f"here=kill-once:{marker}"}
    code = "from miaudit.failpoints import hit; hit('here'); print('passed')"
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert first.returncode == -9 and first.stdout == "" and marker.exists()  # SIGKILL
    second = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert second.returncode == 0 and second.stdout == "passed\n"
