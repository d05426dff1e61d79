import dataclasses

import pytest
import torch

from vega3d.grids import resample_grid
from vega3d.probe import auroc
from vega3d.probe.paper import cell_world_positions, paper_score
from vega3d.probe.sampling import bilinear_sample


def brute_auroc(pos, neg, tol=1e-6):
    wins = sum((1.0 if p - n > tol else 0.5 if abs(p - n) <= tol else 0.0) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_auroc_matches_brute_force_with_ties():
    g = torch.Generator().manual_seed(0)
    pos = torch.randint(0, 5, (40,), generator=g).double() / 4
    neg = torch.randint(0, 5, (30,), generator=g).double() / 4 - 0.1
    assert auroc(pos, neg) == pytest.approx(brute_auroc(pos.tolist(), neg.tolist()))
    assert auroc(torch.ones(5), torch.ones(7) + 5e-7) == 0.5  # near-ties are ties
    assert auroc(torch.ones(3), torch.zeros(3)) == 1.0 and auroc(torch.zeros(3), torch.ones(3)) == 0.0
    assert auroc(torch.ones(3), torch.zeros(0)) != auroc(torch.ones(3), torch.zeros(0))  # NaN when undefined


def test_bilinear_sample_agrees_with_resample_grid():
    f = torch.randn(2, 5, 7, 3, generator=torch.Generator().manual_seed(0))
    height, width = 50, 70
    fine = resample_grid(f, (10, 14))  # bilinear upsampling onto cell centres of a finer grid
    ys = (torch.arange(10) + 0.5) * height / 10
    xs = (torch.arange(14) + 0.5) * width / 14
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    xy = torch.stack([gx.reshape(-1), gy.reshape(-1)], -1).double()
    got = bilinear_sample(f, torch.ones(len(xy), dtype=torch.long), xy, (height, width)).reshape(10, 14, 3)
    torch.testing.assert_close(got, fine[1], rtol=1e-5, atol=1e-5)


def test_cell_positions_ignore_invalid_depth_and_drop_sparse_cells(scene):
    depth = scene.depth.clone()
    h, w = 6, 8  # 16x16-pixel cells on the 96x128 frames
    depth[0, 0:16, 0:16] = 0.0  # cell (0, 0): no valid depth -> dropped
    depth[0, 16:32, 0:15] = 0.0  # cell (1, 0): 16 of 256 pixels valid (6%) -> dropped
    depth[0, 32:48, 0:8] = 0.0  # cell (2, 0): half valid -> kept, mean of the valid half only
    s = dataclasses.replace(scene, depth=depth)
    pos, keep = cell_world_positions(s, (h, w), [0], 0.1)
    assert not keep[0, 0] and not keep[0, 1 * w] and keep[0, 2 * w] and keep[0, 3 * w]
    # expected: mean world point of the valid pixels of cell (2, 0)
    v, u = torch.meshgrid(torch.arange(32, 48), torch.arange(8, 16), indexing="ij")
    d = depth[0, v, u].double()
    k = s.intrinsics_depth.double()
    cam = torch.stack([(u + 0.5 - k[0, 2]) / k[0, 0] * d, (v + 0.5 - k[1, 2]) / k[1, 1] * d, d], -1).reshape(-1, 3)
    world = cam @ s.poses[0, :3, :3].T + s.poses[0, :3, 3]
    torch.testing.assert_close(pos[0, 2 * w], world.mean(0))
    pos_low, keep_low = cell_world_positions(s, (h, w), [0], 0.05)
    assert keep_low[0, 1 * w]  # 6% valid passes a 5% threshold


def test_paper_score_is_mean_over_pairs_of_mean_over_voxels(scene):
    f = torch.randn(len(scene), 24, 32, 16, generator=torch.Generator().manual_seed(0))
    frames = list(range(len(scene)))
    full = paper_score(scene, f, frames)
    per = [p["score"] for p in full["per_pair"] if p["score"] is not None]
    assert full["num_pairs"] == len(per) == len(scene) - 1
    assert full["score"] == pytest.approx(sum(per) / len(per))
    # one pair alone gives that pair's entry
    alone = paper_score(scene, f, [2, 3])
    assert alone["score"] == pytest.approx(full["per_pair"][2]["score"])
    # the same view twice: every voxel is shared and its features are identical -> exactly 1
    twice = scene.select([2, 2])
    one = paper_score(twice, f[[2, 2]], [0, 1])
    assert one["score"] == pytest.approx(1.0, abs=1e-12) and one["voxels_per_pair"] > 10
