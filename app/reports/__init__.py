"""Reports: a tuning result in, figures and a self-contained HTML page out (pure: no database, no HTTP)."""

from app.reports.html import render_report, render_status_page

__all__ = ["render_report", "render_status_page"]
