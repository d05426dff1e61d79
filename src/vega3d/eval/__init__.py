"""Benchmark metrics: one module per benchmark, shared answer normalisation.

Modules (each has ``load_annotations(path)``, ``evaluate(predictions, annotations) -> dict``
and ``table_rows(result)``): :mod:`~vega3d.eval.scanrefer`,
:mod:`~vega3d.eval.multi3drefer`, :mod:`~vega3d.eval.scan2cap`,
:mod:`~vega3d.eval.scanqa`, :mod:`~vega3d.eval.sqa3d`, :mod:`~vega3d.eval.vsibench`.
Shared pieces: :mod:`~vega3d.eval.answers` (LEO cleaning, EM-R),
:mod:`~vega3d.eval.boxes` (3D IoU), :mod:`~vega3d.eval.captions`
(pycocoevalcap), :mod:`~vega3d.eval.records` (the predictions JSONL format).
Results are fractions in [0, 1]; tables (:mod:`~vega3d.eval.table`) show ×100.
"""

# In the paper's Table 1 order, VSI-Bench last.
BENCHMARKS = ("scanrefer", "multi3drefer", "scan2cap", "scanqa", "sqa3d", "vsibench")
