"""Feature grids with known properties, rendered from a scene's exact geometry."""

import torch


def world_fourier_features(scene, grid=(12, 16), num_freq=32, seed=0):
    """(N, h, w, 2F) random Fourier features of the world point at each cell centre.

    Encodes the true 3D position (scale ~0.15 m): the ideal 3D-consistent feature.
    Uses the depth at the cell-centre pixel (scene depth must have colour resolution).
    """
    h, w = grid
    n, hh, ww = scene.depth.shape
    ys = ((torch.arange(h) + 0.5) * hh / h).long()
    xs = ((torch.arange(w) + 0.5) * ww / w).long()
    k = scene.intrinsics_depth.double()
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    px = torch.stack([gx + 0.5, gy + 0.5, torch.ones_like(gx, dtype=torch.float64)], -1).double()
    rays = px @ torch.linalg.inv(k).T  # (h, w, 3)
    d = scene.depth[:, gy, gx].double()  # (n, h, w)
    cam = rays * d.unsqueeze(-1)
    world = cam @ scene.poses[:, None, :3, :3].transpose(-1, -2) + scene.poses[:, None, None, :3, 3]
    g = torch.Generator().manual_seed(seed)
    omega = torch.randn(3, num_freq, generator=g, dtype=torch.float64) / 0.15
    phase = world @ omega
    return torch.cat([phase.cos(), phase.sin()], -1).float()


def image_fourier_features(num_frames, grid=(12, 16), image_size=(96, 128), num_freq=32, seed=0):
    """(N, h, w, 2F) random Fourier features of the cell's image position only (isotropic)."""
    h, w = grid
    height, width = image_size
    ys = (torch.arange(h) + 0.5) * height / h
    xs = (torch.arange(w) + 0.5) * width / w
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    xy = torch.stack([gx, gy], -1).double()
    g = torch.Generator().manual_seed(seed)
    omega = torch.randn(2, num_freq, generator=g, dtype=torch.float64) / (0.15 * width)
    phase = xy @ omega
    f = torch.cat([phase.cos(), phase.sin()], -1).float()
    return f.unsqueeze(0).expand(num_frames, h, w, 2 * num_freq).contiguous()
