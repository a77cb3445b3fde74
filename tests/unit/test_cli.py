"""Small CLI things from issue 16: global flags anywhere, key suggestions, piped output, data_dir."""

from __future__ import annotations

import pytest

from miaudit.cli import _progress, _STATE, main
from miaudit.progress import LineProgress


def _one_error(code: int, err: str) -> str:
    lines = err.strip().splitlines()
    assert code == 2 and lines[-1].startswith("miaudit: error: "), err
    return lines[-1]


@pytest.mark.parametrize("argv", [
    ["--quiet", "config", "--set", "train.epochs=2"],
    ["config", "--quiet", "--set", "train.epochs=2"],
    ["-q", "list", "attacks"],
    ["list", "attacks", "-q"],
    ["--debug", "config"],
    ["config", "--debug"],
])
def test_quiet_and_debug_before_or_after_the_command(capsys, argv):
    assert main(argv) == 0, capsys.readouterr().err


def test_debug_after_the_command_shows_the_traceback(capsys):
    assert main(["config", "--set", "foo=1", "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1] == "miaudit: error: config: foo: unknown key"
    assert main(["config", "--set", "foo=1"]) == 2  # and the flag does not stick to the next call
    assert "Traceback" not in capsys.readouterr().err


def test_quiet_after_the_command_silences_progress(capsys):
    main(["config", "-q"])
    capsys.readouterr()
    assert _STATE["quiet"]
    main(["config"])
    assert not _STATE["quiet"]


@pytest.mark.parametrize(("key", "reported", "hint"), [
    ("train.epoch", "train.epoch", "did you mean train.epochs?"),
    ("runtime.thread", "runtime.thread", "did you mean runtime.threads?"),
    ("trian.epochs", "trian", "did you mean train?"),
    ("data.splits.audits", "data.splits.audits", "did you mean data.splits.audit?"),
])
def test_config_key_typos_get_a_suggestion(capsys, key, reported, hint):
    line = _one_error(main(["config", "--set", f"{key}=3"]), capsys.readouterr().err)
    assert f"{reported}: unknown key ({hint})" in line


def test_unrelated_key_gets_no_suggestion(capsys):
    line = _one_error(main(["config", "--set", "zzzz=3"]), capsys.readouterr().err)
    assert line.endswith("zzzz: unknown key")


def test_piped_output_keeps_long_lines_whole(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out.splitlines()
    downloads = [line for line in out if "download:" in line]
    assert downloads and all(line.rstrip().endswith("(data.params.download: true)") for line in downloads)
    assert any(len(line) > 80 for line in out)  # not wrapped at rich's 80-column default
    assert not any(line.lstrip().startswith(("http", "(data.params")) for line in out)


def test_missing_data_dir_says_the_folder_does_not_exist(capsys, tmp_path):
    missing = tmp_path / "nonexistent"
    code = main(["run", "--set", "data.name=purchase100", "--set", f"data.data_dir={missing}",
                 "--out", str(tmp_path / "out"), "-q"])
    line = _one_error(code, capsys.readouterr().err)
    assert f"{missing} (no such folder)" in line


def test_progress_is_plain_lines_when_stderr_is_not_a_terminal():
    _STATE["quiet"] = False
    with _progress() as progress:  # pytest captures stderr: not a terminal
        assert isinstance(progress, LineProgress)
