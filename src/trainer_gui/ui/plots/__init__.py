"""Live metric plots, in rooms: `panel` (the controls and the grid of plots), `widget` (one
metric's plot and its hover read-out), `curve` (the graphics items that paint a series and the
grid), `export` (the PNG/CSV menu). The numbers they draw come from the Qt-free
`trainer_gui.core.metrics.numerics` and `trainer_gui.core.metrics.series`.

None of these import pyqtgraph: the first `MetricsPanel` does.
"""

from trainer_gui.ui.plots.panel import MetricsPanel

__all__ = ["MetricsPanel"]
