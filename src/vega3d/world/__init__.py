"""A small world model trained here: Wan2.1's DiT architecture at a small size, trained with Wan's
rectified-flow objective on multi-frame clips, probed while it trains (``vega3d train-world``).

- :mod:`vega3d.world.config` — the YAML sections (families ``world`` and ``world_vae``);
- :mod:`vega3d.world.data` — clips: synthetic rooms rendered on the fly, or the user's media;
- :mod:`vega3d.world.noise` — the training noise level (diffusers' logit-normal draw on Wan's grid);
- :mod:`vega3d.world.model` — the DiT with its frozen VAE and context, the VAE's own training, the saved Wan folder;
- :mod:`vega3d.world.family` — both families on the one trainer (:mod:`vega3d.training`);
- :mod:`vega3d.world.schedule` / :mod:`vega3d.world.figure` — the probe every K steps, its JSON and PNG;
- :mod:`vega3d.world.cli` — ``vega3d train-world``.

docs/world.md: what is trained, the objective, the data, the probe schedule, the result.
"""
