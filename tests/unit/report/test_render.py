"""report.html / report.md: rendering (escaping, determinism, atomic writes), never over a file
miaudit did not write, a failure never breaks the caller, and ``miaudit report`` rebuilds a page."""

from __future__ import annotations

import json
import logging

import pytest
from fake_run import make_run

from miaudit.cli import main
from miaudit.errors import RunDirError
from miaudit.report.render import rebuild_report, render, try_write_report, write_report
from miaudit.report.run_page import build_context


def test_user_strings_are_escaped(tmp_path):
    html, md = render(build_context(make_run(tmp_path / "run")))
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "needs &lt;b&gt;more&lt;/b&gt; models" in html
    # many Markdown viewers render inline HTML: user strings are escaped there too (issue 15)
    assert "<script>" not in md and "&lt;script&gt;alert(1)&lt;/script&gt;" in md


def test_output_is_deterministic_and_written_atomically(tmp_path):
    root = make_run(tmp_path / "run")
    html, md = write_report(root)
    first = (html.read_bytes(), md.read_bytes())
    assert rebuild_report(root) == (html, md)
    assert (html.read_bytes(), md.read_bytes()) == first
    assert not list(root.glob(".report*.tmp"))


def test_a_broken_run_never_breaks_the_caller(tmp_path, caplog):
    root = make_run(tmp_path / "run")
    res = json.loads((root / "results.json").read_text())
    res["attacks"]["loss"]["tpr_at_fpr"] = "garbage"
    (root / "results.json").write_text(json.dumps(res))
    with caplog.at_level(logging.WARNING, logger="miaudit.report.render"):
        assert try_write_report(root) is False
    assert "report.html not written" in caplog.text and "miaudit report run" in caplog.text
    assert not (root / "report.html").exists()


def test_cli_report_rebuilds_and_refuses_other_directories(tmp_path, capsys):
    root = make_run(tmp_path / "run")
    assert main(["report", str(root)]) == 0
    assert (root / "report.html").is_file() and (root / "report.md").is_file()
    assert "report:" in capsys.readouterr().out
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("miaudit: error:") and "neither a finished run" in err[0]


@pytest.mark.parametrize("name", ["report.html", "report.md"])
def test_a_report_miaudit_did_not_write_is_kept(tmp_path, name):
    root = make_run(tmp_path / "run")
    (root / name).write_text("my own notes")
    with pytest.raises(RunDirError, match="not written by miaudit"):
        write_report(root)
    assert (root / name).read_text() == "my own notes"
    assert not (root / ({"report.html", "report.md"} - {name}).pop()).exists()  # neither file is written
    html, md = render(build_context(root))
    (root / name).write_text(html if name.endswith(".html") else md)  # miaudit's own (its mark): rewritten
    assert write_report(root)
