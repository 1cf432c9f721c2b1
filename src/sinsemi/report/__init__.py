"""Figures and tables (``python -m sinsemi.report.figures all|NAME``)."""
