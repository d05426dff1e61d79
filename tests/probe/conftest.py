import pytest

from vega3d.scenes import synthetic_scene

# Options scaled to the small 96x128 test frames (defaults are for ~320-640 px frames).
SMALL = dict(min_motion_px=8.0, local_negative_px=(8.0, 24.0), recall_stride_px=8.0, recall_radii_px=(8.0, 16.0, 32.0))


@pytest.fixture(scope="session")
def scene():
    """8 frames, 96x128, exact depth and poses (vega3d.scenes.synthetic_scene)."""
    return synthetic_scene(num_frames=8, height=96, width=128, seed=0)
