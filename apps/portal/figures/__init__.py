"""Publication-grade figures of a stored result (forest, contour-enhanced funnel, Baujat or
leave-one-study-out influence, cumulative, subgroups, meta-regression bubble, history), drawn with
matplotlib once per result and kept in the figure store, and the tables of numbers behind them.

``data`` reads a result for its figures (its rows, weights and the forest plot's rows),
``diagnostics`` adapts the other figures' blocks (funnel, Baujat, influence, cumulative, subgroups,
bubble) and ``history`` the analysis's results over time; ``draw`` draws a figure, ``catalog`` names
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
