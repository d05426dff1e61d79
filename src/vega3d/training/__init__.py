"""One trainer for every model family (``vega3d train CONFIG.yaml``).

- :mod:`vega3d.training.families` — what a model family provides (:class:`Family`) and the registry;
- :mod:`vega3d.training.config` — the generic config sections and the one YAML loader;
- :mod:`vega3d.training.loop` — the accelerate loop (prepare, resume, step, log, save).

Families: ``qwen25vl`` (:mod:`vega3d.mllm.family`), ``video3d_llm`` (:mod:`vega3d.mllm.video3d_llm.family`),
``openvla_oft`` (:mod:`vega3d.policy.family`), ``world`` and ``world_vae`` (:mod:`vega3d.world.family`).
"""
