"""Readable result tables (×100, one decimal) and the paper's published numbers.

Results stay fractions in [0, 1] everywhere else; only tables multiply by 100.
"""

from __future__ import annotations

import math

# VEGA-3D (arXiv 2603.19235) Table 1 and the VSI-Bench average, as published;
# columns in the paper's order. Shown under our numbers for side-by-side reading.
PAPER_ROWS: dict[str, dict[str, dict[str, float]]] = {
    "scanrefer": {
        "Video-3D LLM": {"Acc@0.25": 58.1, "Acc@0.5": 51.7},
        "VEGA-3D": {"Acc@0.25": 63.2, "Acc@0.5": 56.2},
    },
    "multi3drefer": {
        "Video-3D LLM": {"F1@0.25": 58.0, "F1@0.5": 52.7},
        "VEGA-3D": {"F1@0.25": 60.8, "F1@0.5": 55.1},
    },
    "scan2cap": {
        "Video-3D LLM": {"CIDEr@0.5": 83.8, "BLEU-4@0.5": 41.3},
        "VEGA-3D": {"CIDEr@0.5": 83.2, "BLEU-4@0.5": 42.2},
    },
    "scanqa": {
        "Video-3D LLM": {"CIDEr": 102.1, "EM": 30.1},
        "VEGA-3D": {"CIDEr": 106.3, "EM": 30.4},
    },
    "sqa3d": {
        "Video-3D LLM": {"All": 58.6},
        "VEGA-3D": {"All": 61.3},
    },
    "vsibench": {
        "VEGA-3D": {"Avg.": 50.5},
    },
}


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{100.0 * value:.1f}"


def render_table(benchmark: str, columns: list[str], rows: list[tuple[str, list]], *, paper: bool = True) -> str:
    """Format ``rows`` of fractions as a fixed-width table (values ×100).

    With ``paper=True`` the published rows for ``benchmark`` follow, marked
    ``paper:``; their cells are already percentages.
    """
    label_width = max([len(label) for label, _ in rows] + [len("paper: Video-3D LLM"), len(benchmark)])
    widths = [max(len(c), 6) for c in columns]
    lines = [benchmark.ljust(label_width) + "  " + "  ".join(c.rjust(w) for c, w in zip(columns, widths))]
    lines.append("-" * len(lines[0]))
    for label, values in rows:
        lines.append(label.ljust(label_width) + "  " + "  ".join(_cell(v).rjust(w) for v, w in zip(values, widths)))
    if paper and PAPER_ROWS.get(benchmark):
        for model, numbers in PAPER_ROWS[benchmark].items():
            cells = [f"{numbers[c]:.1f}" if c in numbers else "" for c in columns]
            lines.append(
                f"paper: {model}".ljust(label_width) + "  " + "  ".join(c.rjust(w) for c, w in zip(cells, widths))
            )
    return "\n".join(line.rstrip() for line in lines)
