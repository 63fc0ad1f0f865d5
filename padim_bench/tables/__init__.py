"""The paper's tables, side by side with measured results: reported value, ours, difference.

Results are run records read from ``results.json`` files (never typed in;
:func:`padim_bench.store.read_results`). A measured row is matched to a paper row by method,
backbone and, where the paper row says, ``d`` and layers; anything else is shown as an extra row,
labelled with its own backbone. Group cells (textures / objects / all) say how many of the
dataset's categories the mean covers (``2/15``): a partial mean is not the paper's number.
Table VIII is computed from the architectures (``predict_state_nbytes``), with the paper's
counting convention per cell.

* :mod:`.cells`: cells, which row and table a run goes in, measured values;
* :mod:`.build`: a table from the paper's cells and the runs; :mod:`.notes`: the comparisons
  under Tables VI and VII and the contended timings; :mod:`.table8`: Table VIII;
* :mod:`.render`: Markdown, CSV and LaTeX; :mod:`.layout`: the terminal, fitted to its width.
"""

from .build import build
from .cells import (GROUP_KINDS, PERCENT_METRICS, Cell, TableData, analog_row_for, dataset_name, extra_label,
                    group_size, in_table, measured_value, row_for, table_dataset)
from .layout import FittedTable, to_rich
from .notes import contention_notes
from .render import cell_parts, cell_text, paper_digits, to_csv, to_latex, to_markdown
from .table8 import build_table8, fitted_state_gb

__all__ = [
    "GROUP_KINDS", "PERCENT_METRICS", "Cell", "FittedTable", "TableData", "analog_row_for", "build", "build_table8", "cell_parts", "cell_text",
    "contention_notes",
    "dataset_name", "extra_label", "fitted_state_gb", "group_size", "in_table", "measured_value", "paper_digits",
    "row_for", "table_dataset", "to_csv", "to_latex", "to_markdown", "to_rich",
]
