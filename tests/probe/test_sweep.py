import pytest

from tests.probe.conftest import SMALL
from vega3d.errors import Vega3DError
from vega3d.probe import score, sweep_blocks, sweep_timesteps


@pytest.fixture(scope="module")
def wan(tmp_path_factory):
    from vega3d.encoders import build_encoder
    from vega3d.standin.wan import save_tiny_wan

    model = save_tiny_wan(tmp_path_factory.mktemp("wan") / "tiny", num_layers=3)
    return build_encoder("wan", model=model, block=2, height=96, width=128)


class _Counter:
    """Counts VAE passes (calls of the simulator's one VAE entry point) and DiT passes
    (the patch embedding runs once per DiT pass) while it is active."""

    def __init__(self, monkeypatch, encoder):
        self.vae = 0
        self.dit = []
        sim = encoder.simulator
        vae = type(sim)._encode_frames

        def counted(this, x):
            self.vae += 1
            return vae(this, x)

        monkeypatch.setattr(type(sim), "_encode_frames", counted)
        self.handle = sim.transformer.rope.register_forward_pre_hook(lambda *_a: self.dit.append(1))


def test_timestep_sweep_encodes_once_and_equals_separate_runs(scene, wan, monkeypatch):
    opts = {**SMALL, "recall_stride_px": 16.0}
    count = _Counter(monkeypatch, wan)
    try:
        rows = sweep_timesteps(scene, wan, [100, 500, 300], **opts)
    finally:
        count.handle.remove()
    assert wan.simulator.batch_frames >= len(scene)  # so one VAE pass = one _encode_frames call
    assert count.vae == 1 and len(count.dit) == 3  # one VAE pass; one DiT pass per timestep
    assert [r["timestep"] for r in rows] == [100, 500, 300]
    assert [r["encoder"]["t"] for r in rows] == [101, 500, 299]  # flow_noise_level with shift 5
    for r in rows:  # identical to a separate simulator at that timestep: extract + score
        alone = wan.at(timestep=r["timestep"])
        assert r["encoder"] == alone.config
        assert r["result"].to_dict() == score(scene, alone(scene.frames()), **opts).to_dict()
    assert rows[0]["result"].to_dict() != rows[1]["result"].to_dict()


def test_block_sweep_encodes_once_and_equals_separate_runs(scene, wan, monkeypatch):
    opts = {**SMALL, "recall_stride_px": 16.0}
    count = _Counter(monkeypatch, wan)
    try:
        rows = sweep_blocks(scene, wan, [2, 0, 1], **opts)
    finally:
        count.handle.remove()
    assert count.vae == 1 and len(count.dit) == 1  # one VAE pass, one DiT pass for all blocks
    assert [r["block"] for r in rows] == [0, 1, 2]
    for r in rows:
        alone = wan.at(block=r["block"])
        assert r["encoder"] == alone.config
        assert r["result"].to_dict() == score(scene, alone(scene.frames()), **opts).to_dict()


def test_sweep_errors(scene, wan):
    from vega3d.encoders import build_encoder

    with pytest.raises(Vega3DError, match="needs the 'wan' encoder"):
        sweep_blocks(scene, build_encoder("pixels"), [1])
    with pytest.raises(Vega3DError, match="no values"):
        sweep_timesteps(scene, wan, [])
    with pytest.raises(Vega3DError, match="block"):
        sweep_blocks(scene, wan, [7])  # the stand-in has 3 blocks
    with pytest.raises(Vega3DError, match="timestep"):
        sweep_timesteps(scene, wan, [300, 1200])
    with pytest.raises(Vega3DError, match="no values"):
        sweep_blocks(scene, wan, iter([]))
