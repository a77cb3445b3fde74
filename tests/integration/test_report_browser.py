"""report.html in a real browser: headless Chromium opens it from disk, logs nothing to its console
(no script error, no blocked request), renders the verdict, and takes a screenshot.

Console messages reach stderr through ``--enable-logging=stderr`` as ``…:CONSOLE…`` lines; the page's
Content-Security-Policy turns any attempt to load something from another host into such a line,
and ``--host-resolver-rules`` makes sure nothing could be fetched anyway. The first test checks that
this detector does see a script error and a blocked request on this Chromium, so a clean report
run means something. Skipped only when no Chromium binary is installed (``.ci/run`` installs
Debian's ``chromium``).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: the badge backgrounds of the three leakage levels (report.html.j2: --low-bg, --elevated-bg, --high-bg)
BADGE_COLOURS = ((0xDA, 0xFB, 0xE1), (0xFF, 0xF8, 0xC5), (0xFF, 0xEB, 0xE9))


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium binary on PATH (tried: " + ", ".join(CHROMIUM_NAMES) + "); install Debian's `chromium` "
           "(apt-get install chromium, as .ci/run does) to run the browser test of report.html",
)


def run_chromium(page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    """One headless Chromium run on ``page`` with console logging to stderr and no network at all."""
    args = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={profile}",
        "--enable-logging=stderr", "--v=0", "--hide-scrollbars", *extra, page.resolve().as_uri(),
    ]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"chromium exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    return proc


def console_messages(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


def test_the_console_detector_sees_script_errors_and_blocked_requests(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text('<!doctype html><meta charset="utf-8"><script>console.error("boom"); missing();</script><p>x')
    blocked = tmp_path / "blocked.html"
    blocked.write_text(
        '<!doctype html><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; img-src data:\"><img src=\"https://example.invalid/a.png\"><p>x"
    )
    msgs = console_messages(run_chromium(bad, tmp_path / "p1", "--dump-dom").stderr)
    assert any("boom" in m for m in msgs) and any("Uncaught" in m for m in msgs)
    msgs = console_messages(run_chromium(blocked, tmp_path / "p2", "--dump-dom").stderr)
    assert any("Content Security Policy" in m for m in msgs), msgs


@pytest.fixture(scope="module")
def report_page(tmp_path_factory):
    from conftest import TINY

    from miaudit.pipeline.configure import load_config
    from miaudit.pipeline.run import run_audit

    out = tmp_path_factory.mktemp("browser") / "run"
    # every section: attacks, vulnerable records (tiny run default), an inference-time defence
    run_audit(load_config(None, TINY + ["audit.bootstrap=50", "defences=[logit-reweighting]"]), out)
    return out / "report.html"


@pytest.mark.slow
def test_report_opens_without_console_errors_and_renders_the_verdict(report_page, tmp_path):
    from PIL import Image

    shot = tmp_path / "report.png"
    proc = run_chromium(report_page, tmp_path / "p1", f"--screenshot={shot}", "--window-size=1200,1600")
    assert console_messages(proc.stderr) == [], "\n".join(console_messages(proc.stderr))
    img = np.asarray(Image.open(shot).convert("RGB"))
    assert img.shape == (1600, 1200, 3)
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 50  # not a blank page
    top = img[:500].reshape(-1, 3).astype(int)
    assert any((np.abs(top - c).max(1) <= 3).sum() > 200 for c in BADGE_COLOURS), "no leakage badge at the top"

    dom = run_chromium(report_page, tmp_path / "p2", "--dump-dom")
    assert console_messages(dom.stderr) == []
    for marker in ('id="verdict"', "of training records identified", 'id="attacks"', 'id="vulnerable"',
                   'id="defences"', "adaptive"):
        assert marker in dom.stdout, marker
