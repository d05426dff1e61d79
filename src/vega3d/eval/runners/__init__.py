"""Pieces of the benchmark runner (:mod:`vega3d.eval.run`).

- :mod:`~vega3d.eval.runners.questions` — which questions a run answers, their prompts and
  where their video / scan is (:func:`prepare`).
- :mod:`~vega3d.eval.runners.media` — each scene's video / scan read once, the next one read
  ahead in a background thread.
- :mod:`~vega3d.eval.runners.outputs` — the output folder: ``run.json`` settings, answers
  appended as they are generated (one file per process), resume, the final merge.
"""
