"""The probe on 10 real TUM RGB-D frames (the ``tum_sample`` fixture: skipped without ../shared)."""


def test_real_scan_poses_agree_and_position_alone_is_controlled(tum_sample):
    from vega3d.encoders import build_encoder
    from vega3d.probe import score
    from vega3d.scenes import load_scene

    scene = load_scene(tum_sample)
    grid = build_encoder("pixels", stride=16)(scene.frames())
    res = score(scene, grid)
    assert res.pose_consistency > 0.9 and not res.warnings  # real poses + depth pass the occlusion test
    assert res.num_pairs > 5 and res.auroc > 0.7
    ctrl = score(scene, build_encoder("position", grid=tuple(grid.shape[1:3]))(scene.frames()))
    # the camera barely moves: position alone wins against random negatives ...
    assert ctrl.auroc > 0.9
    # ... and is at chance against position-controlled ones
    assert abs(ctrl.auroc_local - 0.5) < 0.07
