"""Report pictures: what a run saves for them, the matplotlib figures and the HTML page.

* :mod:`.data` (no matplotlib): at run time, the curve points (image ROC, pixel ROC, PRO up to
  the FPR limit), the chosen thresholds and the anomaly maps of a few selected test images are
  saved into ``OUT/report_data/<category>.json`` / ``.npz``; read back by the report.
* :mod:`.figures`: matplotlib figures (object-oriented API on the Agg canvas, no pyplot state).
* :mod:`.html`: the self-contained HTML page (PNGs embedded as base64 data URIs).
* :mod:`.build`: ``build_report(run folders, out)``, what ``padim-bench report`` calls.

Importing this package imports neither matplotlib nor torch; the runner imports :mod:`.data` only.
"""
