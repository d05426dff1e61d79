import pytest

from tests.probe.conftest import SMALL
from tests.probe.helpers import world_fourier_features
from vega3d.probe import score
from vega3d.probe.figures import sweep_figure, sweep_plot


@pytest.fixture(scope="module")
def rows(scene):
    good = world_fourier_features(scene)
    results = [
        score(scene, good, **SMALL),
        score(scene, good * 0 + good.mean((1, 2), keepdim=True) + 0.01 * good, **SMALL),
    ]
    return [{"block": b, "result": r} for b, r in zip((3, 4), results)]


def test_sweep_plot_integer_block_ticks_and_legend_outside(rows, tmp_path):
    import matplotlib.pyplot as plt

    fig = sweep_plot(rows, "block", control=rows[1]["result"], title="demo [STAND-IN: random weights]")
    ax = fig.axes[0]
    assert list(ax.get_xticks()) == [3, 4] and [t.get_text() for t in ax.get_xticklabels()] == ["3", "4"]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legend, axes_box = ax.get_legend().get_window_extent(renderer), ax.get_window_extent(renderer)
    assert legend.x0 >= axes_box.x1  # beside the axes: it cannot cover a line
    assert fig.get_window_extent(renderer).contains(legend.x1 - 1, legend.y0 + 1)  # and not cut off
    assert "STAND-IN" in ax.get_title()
    plt.close(fig)
    path = sweep_figure(rows, "block", tmp_path / "s.png", control=rows[1]["result"])
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_pca_figure_labels_its_rows(scene, tmp_path, monkeypatch):
    from vega3d.probe import figures

    shown = {}

    def keep(fig, path, dpi, title="", tight=True):
        shown["labels"] = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
        shown["title"] = title
        return path

    monkeypatch.setattr(figures, "_save", keep)
    figures.pca_figure(scene, world_fourier_features(scene), tmp_path / "p.png", title="t")
    assert shown["labels"][0] == "frames" and "PCA" in shown["labels"][1] and shown["title"] == "t"
