"""Outputs of a run: results.json, summary table, figures, report."""

from miaudit.report.summary import format_summary, pct

__all__ = ["format_summary", "pct"]
