"""The one place that formats numbers for people: percents, intervals, counts, p-values, durations.

Every output a person reads (``summary.txt``, ``report.html``, ``report.md``) formats through
these functions, so a figure reads the same everywhere: percent with one decimal, a 95%
interval as ``±`` its half-width (the exact interval goes into a tooltip where the medium has
one), counts with thousands separators.
"""

from __future__ import annotations

import math


def _missing(x: float | None) -> bool:
    return x is None or (isinstance(x, float) and not math.isfinite(x))


def pct(x: float | None) -> str:
    """Percent with one decimal, the format used everywhere in reports.

    >>> pct(0.0769), pct(None)
    ('7.7%', 'n/a')
    """
    return "n/a" if _missing(x) else f"{100 * x:.1f}%"


def pct_ci(x: float | None, ci: list[float] | None) -> str:
    """Percent with the half-width of its 95% interval, e.g. ``73.1±0.4%`` (no interval: plain ``pct``).

    >>> pct_ci(0.731, [0.727, 0.735])
    '73.1±0.4%'
    """
    if _missing(x) or not ci or any(_missing(c) for c in ci):
        return pct(x)
    return f"{100 * x:.1f}±{50 * (ci[1] - ci[0]):.1f}%"


def pct_range(ci: list[float] | None) -> str:
    """A 95% interval as an explicit range, e.g. ``7.4–8.2%`` (empty when there is none).

    >>> pct_range([0.0736, 0.0818])
    '7.4–8.2%'
    """
    if not ci or any(_missing(c) for c in ci):
        return ""
    return f"{100 * ci[0]:.1f}–{100 * ci[1]:.1f}%"


def points(x: float | None) -> str:
    """A difference of two shares in percentage points, signed: ``+3.2 pts``.

    >>> points(-0.0321)
    '−3.2 pts'
    """
    if _missing(x):
        return "n/a"
    s = f"{100 * abs(x):.1f} pts"
    return ("−" if x < 0 and f"{100 * abs(x):.1f}" != "0.0" else "+") + s


def count(n: float | None) -> str:
    """A whole number with thousands separators (rounded): ``20,000``.

    >>> count(19601), count(11.84)
    ('19,601', '12')
    """
    return "n/a" if _missing(n) else f"{round(n):,}"


def decimal(x: float | None, digits: int = 1) -> str:
    """A plain decimal (expected counts, ratios): ``11.8``.

    >>> decimal(11.8406), decimal(0.7260833, 2)
    ('11.8', '0.73')
    """
    return "n/a" if _missing(x) else f"{x:.{digits}f}"


def pvalue(p: float | None) -> str:
    """``p = 0.012``, or ``p < 1e-300`` where the exact tail underflows double precision.

    >>> pvalue(0.0123), pvalue(0.0), pvalue(None)
    ('p = 0.012', 'p < 1e-300', 'p n/a')
    """
    if _missing(p):
        return "p n/a"
    return "p < 1e-300" if p < 1e-300 else f"p = {p:.2g}"


def fpr_label(alpha: float | str) -> str:
    """An FPR as people say it: ``1%``, ``0.1%``, ``0.01%``, ``0%``.

    >>> fpr_label("0.001"), fpr_label(0.01), fpr_label(0.0)
    ('0.1%', '1%', '0%')
    """
    return f"{100 * float(alpha):g}%"


def one_in(alpha: float) -> str:
    """An FPR as a rate in words: ``1-in-100`` (as in "a 1-in-100 false-alarm rate").

    >>> one_in(0.01), one_in(0.001)
    ('1-in-100', '1-in-1,000')
    """
    if alpha <= 0:
        return "no"
    return f"1-in-{round(1 / alpha):,}"


def duration(seconds: float | None) -> str:
    """Wall time in the largest sensible units: ``45 s``, ``12 min 5 s``, ``2 h 03 min``.

    >>> duration(0.2), duration(44.6), duration(725.2), duration(7385)
    ('< 1 s', '45 s', '12 min 5 s', '2 h 03 min')
    """
    if _missing(seconds):
        return "n/a"
    if seconds < 0.5:
        return "< 1 s"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"
