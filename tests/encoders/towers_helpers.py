"""Shared by the tower tests: stand-in folders (built once per session) and a geometry check."""

import torch

# 3 frames of 64x96 px: smooth random colour fields (a local change stays local)
FRAMES = torch.nn.functional.interpolate(
    torch.rand(3, 3, 8, 12, generator=torch.Generator().manual_seed(0)), size=(64, 96), mode="bilinear"
).clamp(0, 1)


def change_centre(encoder, frames: torch.Tensor, box: tuple[slice, slice]) -> tuple[float, float]:
    """Paint the pixels ``box`` = (rows, columns) of frame 0 and return where, in frame pixels, the
    features changed: the centroid of the squared change above its median over the grid (norms and
    attention also shift every cell a little), each cell at its centre under the encoder's pixel
    map (vega3d.grids.cell_centers: cells tile the whole frame)."""
    from vega3d.grids import cell_centers

    edited = frames.clone()
    edited[0, :, box[0], box[1]] = torch.tensor([1.0, 0.0, 1.0]).view(3, 1, 1)
    change = (encoder(edited)[0] - encoder(frames)[0]).pow(2).sum(-1)  # (h, w)
    h, w = change.shape
    centres = cell_centers(h, w, frames.shape[2], frames.shape[3]).reshape(h * w, 2).double()
    weight = (change - change.median()).clamp_min(0).reshape(-1).double()  # the local excess over the global shift
    x, y = (centres * weight[:, None]).sum(0) / weight.sum()
    return float(x), float(y)


def assert_change_at(encoder, frames, box, tolerance_px: float):
    """The features change around the painted ``box`` (within ``tolerance_px`` of its centre)."""
    x, y = change_centre(encoder, frames, box)
    cx, cy = (box[1].start + box[1].stop) / 2, (box[0].start + box[0].stop) / 2
    assert abs(x - cx) <= tolerance_px and abs(y - cy) <= tolerance_px, ((x, y), (cx, cy))


#: Two painted boxes (rows, columns) of the 64x96 frames: top-left and bottom-right of the centre.
TOP_LEFT, BOTTOM_RIGHT = (slice(8, 24), slice(12, 30)), (slice(40, 56), slice(60, 84))


def assert_change_on_its_side(encoder, frames):
    """For towers whose random weights spread a local change widely (UNets: GroupNorm statistics and
    attention over the whole image), the weaker check: the change of a box painted top-left of the
    frame centre lies top-left of it, and bottom-right for a box bottom-right (a flipped,
    transposed or cropped map fails it)."""
    cy, cx = frames.shape[2] / 2, frames.shape[3] / 2
    x, y = change_centre(encoder, frames, TOP_LEFT)
    assert x < cx and y < cy, (x, y)
    x, y = change_centre(encoder, frames, BOTTOM_RIGHT)
    assert x > cx and y > cy, (x, y)
