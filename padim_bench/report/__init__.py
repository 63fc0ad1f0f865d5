"""Report pictures: what a run saves for them, the matplotlib figures and the HTML page.

* :mod:`.data` (no matplotlib): at run time, the curve points (image ROC, pixel ROC, PRO up to
  the FPR limit), the chosen thresholds and the anomaly maps of a few selected test images are
  saved into ``OUT/report_data/<category>.json`` / ``.npz``; read back by the report.
* :mod:`.runs`: the runs a report shows (labels, what sets each apart, caveats), the paper's
  markers and each chart's data; :mod:`.compare`: the same test images across the runs.
* :mod:`.figures` (curves, bars, time and memory) and :mod:`.overlays` (test images): matplotlib
  figures (object-oriented API on the Agg canvas, no pyplot state).
* :mod:`.html`: the self-contained HTML page (sections, table of contents, PNGs embedded as base64
  data URIs, no script).
* :mod:`.build`: ``build_report(run folders, out)``, what ``padim-bench report`` calls.
* :mod:`.browser`: the page in headless Chromium (measurements, screenshots), for the screenshot
  script and the browser test only.

Importing this package imports neither matplotlib nor torch; the runner imports :mod:`.data` only.
"""
