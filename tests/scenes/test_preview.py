from PIL import Image

from vega3d.scenes import synthetic_scene
from vega3d.scenes.preview import main, preview_figure


def test_preview_figure_writes_png(tmp_path):
    scene = synthetic_scene(num_frames=3, height=24, width=32, seed=1)
    out = preview_figure(scene, tmp_path / "sub" / "p.png", num_frames=2)
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size[0] > 300


def test_preview_cli_on_a_written_scan(tmp_path):
    from vega3d.scenes import write_scene

    root = write_scene(synthetic_scene(num_frames=2, height=24, width=32), tmp_path / "scan", "posed_images")
    assert main(["--scene", str(root), "--out", str(tmp_path / "x.png"), "--frames", "2"]) == 0
    assert (tmp_path / "x.png").stat().st_size > 1000
