"""Real LIBERO episodes with the tiny OpenVLA-OFT stand-in, with and without the generative branch
(``vega3d libero-eval --policy FOLDER``): libero_spatial task 0, 10 settle + 16 policy steps (two chunks),
128-px cameras. Needs the ``libero`` extra and a headless GL library; skipped with the reason otherwise."""

import json

from tests.libero.real_env import REAL_LIBERO

pytestmark = REAL_LIBERO


def test_tiny_policy_and_branch_policy_run_real_episodes(tiny_oft, tiny_wan, tmp_path):
    from vega3d.libero.runner import evaluate, make_config, read_episodes
    from vega3d.media import count_frames
    from vega3d.standin.oft import save_tiny_branch_policy

    branch = save_tiny_branch_policy(tmp_path / "branch", tiny_oft, tiny_wan)
    for name, policy in (("plain", tiny_oft), ("branch", branch)):
        config = make_config(
            policy=str(policy), suite="libero_spatial", tasks=[0], trials=1, max_steps=16, camera_size=128
        )
        out = tmp_path / name
        results = evaluate(config, out, show_progress=False)
        (record,) = read_episodes(out / "episodes.jsonl")
        assert record["error"] is None, record["error"]
        assert (record["steps"], record["queries"]) == (16, 2)  # two open-loop chunks of K = 8
        assert count_frames(out / record["video"]) == 16
        assert results["complete"] and json.loads((out / "run.json").read_text())["config"]["policy"] == str(policy)
