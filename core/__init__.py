"""Mosaic Studio core: engines, score machines, libraries, store and analysis.

Nothing in this package imports Streamlit; it is usable from a notebook or the command line
(``python -m core --help``).
"""

__version__ = "0.1.0"
