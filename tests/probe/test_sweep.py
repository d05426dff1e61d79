import pytest
import torch

from tests.probe.conftest import SMALL
from vega3d.errors import Vega3DError
from vega3d.probe import score, sweep_blocks, sweep_timesteps


@pytest.fixture(scope="module")
def wan(tmp_path_factory):
    from vega3d.encoders import build_encoder
    from vega3d.simulator.tiny import save_tiny_wan

    model = save_tiny_wan(tmp_path_factory.mktemp("wan") / "tiny", num_layers=3)
    return build_encoder("wan", model=model, block=2, height=96, width=128)


def test_sweeps_match_separate_runs(scene, wan):
    opts = {**SMALL, "recall_stride_px": 16.0}
    rows = sweep_timesteps(scene, wan, [100, 500], **opts)
    assert [r["timestep"] for r in rows] == [100, 500]
    assert [r["encoder"]["t"] for r in rows] == [101, 500]  # flow_noise_level with shift 5
    alone = score(scene, wan.at(timestep=500)(scene.frames()), **opts)
    assert rows[1]["result"].to_dict() == alone.to_dict()
    blocks = sweep_blocks(scene, wan, [0, 2], **opts)
    assert [r["block"] for r in blocks] == [0, 2]
    same = score(scene, wan(scene.frames()), **opts)  # the encoder's own block 2
    assert blocks[1]["result"].auroc == pytest.approx(same.auroc, abs=1e-6)


def test_sweep_errors(scene, wan):
    from vega3d.encoders import build_encoder

    with pytest.raises(Vega3DError, match="needs the 'wan' encoder"):
        sweep_blocks(scene, build_encoder("pixels"), [1])
    with pytest.raises(Vega3DError, match="no values"):
        sweep_timesteps(scene, wan, [])
    with pytest.raises(Vega3DError, match="block"):
        sweep_blocks(scene, wan, [7])  # the stand-in has 3 blocks
