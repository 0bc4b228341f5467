"""Publication-grade figures of a stored result (forest, contour-enhanced funnel, Baujat or
leave-one-study-out influence, cumulative, subgroups, meta-regression bubble, history), drawn with
matplotlib once per result and kept in the figure store, and the tables of numbers behind them.

``data`` reads a result's blocks into what a figure shows, ``draw`` draws it, ``catalog`` names
the figures and tables with their text alternatives, ``store`` keeps each rendering.
"""

from apps.portal.figures.catalog import FIGURES, FORMATS, SORT_NAMES, TABLES_ONLY, Table, alt_text, available
from apps.portal.figures.data import MAX_PLOT_ROWS, SORTS, critical_value, inputs_of

__all__ = [
    "FIGURES",
    "FORMATS",
    "MAX_PLOT_ROWS",
    "SORTS",
    "SORT_NAMES",
    "TABLES_ONLY",
    "Table",
    "alt_text",
    "available",
    "critical_value",
    "inputs_of",
]
