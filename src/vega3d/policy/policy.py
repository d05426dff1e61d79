""":class:`OFTPolicy`: an OpenVLA-OFT policy (with or without the generative branch) for the LIBERO harness.

It implements :class:`vega3d.libero.Policy`. The harness hands it upright frames already put
through OFT's evaluation preprocessing (``image_size`` 224: JPEG round trip + antialiased
Lanczos-3 from 256, then the 90 %-area centre crop, :func:`vega3d.libero.protocol.prepare_image`),
the 8-D proprio and the instruction; :meth:`OFTPolicy.act` returns the (K, 7) chunk
un-normalised with the q01/q99 statistics, the gripper left in OpenVLA's [0, 1] convention
(``action_format = "openvla"``: the harness binarises and inverts it as OFT does).

Statistics: a released folder's ``dataset_statistics.json`` may hold several keys (the combined
LIBERO model holds four); the episode's suite picks ``<suite>`` or ``<suite>_no_noops`` at
:meth:`reset`, as OFT's ``run_libero_eval.py`` does. A vega3d policy checkpoint un-normalises
with the statistics it recorded when it was trained.

The branch's Wan features are computed from the same 224² images the policy sees (the
branch cameras'), by the simulator the checkpoint recorded (or one given).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vega3d.devices import resolve_device
from vega3d.errors import Vega3DError
from vega3d.policy.config import PolicyConfig
from vega3d.policy.folder import open_oft_folder
from vega3d.policy.vla import VLAPolicy, is_policy_checkpoint, read_checkpoint_meta


def default_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def check_policy_folder(path, suite: str | None = None) -> None:
    """Every cheap check of a policy folder (a released OpenVLA-OFT folder or a vega3d policy checkpoint), and,
    with ``suite``, that its statistics cover it; one :class:`Vega3DError` line, no weights read."""
    path = Path(path)
    if is_policy_checkpoint(path):
        config = PolicyConfig.model_validate(read_checkpoint_meta(path)["config"])
        open_oft_folder(config.base_model)
        return
    folder = open_oft_folder(path)
    if suite is not None:
        folder.stats(suite)


class OFTPolicy:
    """The harness's :class:`~vega3d.libero.Policy` for an OpenVLA-OFT :class:`~vega3d.policy.vla.VLAPolicy`."""

    center_crop = True
    action_format = "openvla"

    def __init__(self, vla: VLAPolicy, folder=None):
        self.vla = vla.eval()
        self.folder = folder  # a released folder: statistics per suite (None: the recorded statistics)
        self.image_size = vla.processor.image_size
        self.name = "openvla-oft" + ("+wan" if vla.net.branch is not None else "")
        self.device = next(vla.net.parameters()).device

    @classmethod
    def from_pretrained(cls, path, device=None, dtype=None, simulator=None, unnorm_key: str | None = None) -> OFTPolicy:
        """A released OpenVLA-OFT folder or a vega3d policy checkpoint. ``device``: default CUDA if present, else
        CPU; ``dtype``: default bfloat16 on CUDA (as OFT), float32 on CPU. ``simulator``: a WanWorldSimulator or
        Wan folder for a policy with the branch (default: the one the checkpoint recorded)."""
        device = resolve_device(device) if device is not None else default_device()
        dtype = dtype or ("bfloat16" if device.type == "cuda" else "float32")
        path = Path(path)
        if is_policy_checkpoint(path):
            vla, folder = VLAPolicy.from_pretrained(path, dtype=dtype, device=device), None
            if vla.net.branch is not None:
                vla.attach_simulator(_simulator(vla.config.simulator, simulator, device))
        else:
            folder = open_oft_folder(path)
            key = (
                unnorm_key
                if unnorm_key is not None
                else (None if len(folder.statistics) == 1 else sorted(folder.statistics)[0])
            )
            config = PolicyConfig(base_model=str(path), unnorm_key=key, lora={"scope": "none"}, train_heads=False)
            vla = VLAPolicy.from_config(config, dtype=dtype, device=device, folder=folder)
            folder = folder if unnorm_key is None else None
        return cls(vla, folder)

    def reset(self, episode) -> None:
        """Use the statistics of the episode's suite (a released folder holding several keys)."""
        if self.folder is not None:
            self.vla.processor.statistics = self.folder.stats(episode.suite)

    @torch.inference_mode()
    def act(self, observation: dict) -> np.ndarray:
        """(K, 7) un-normalised actions for one observation (``agentview``, ``wrist``, ``proprio``, ``language``)."""
        proc, config = self.vla.processor, self.vla.config
        missing = [k for k in (*config.cameras, "proprio", "language") if k not in observation]
        if missing:
            raise Vega3DError(
                f"observation lacks {missing}; the policy reads {[*config.cameras, 'proprio', 'language']}"
            )
        ids, mask = proc.batch([proc.prompt_ids(observation["language"])])
        pixels = proc.pixel_values([observation[c] for c in config.cameras])[None]
        proprio = torch.tensor(proc.normalize_proprio(observation["proprio"]), dtype=torch.float32)[None]
        frames = None
        if self.vla.net.branch is not None:
            frames = torch.from_numpy(
                np.stack([_sized(observation[c], self.image_size) for c in config.branch_cameras])
            )[None]
        dtype = next(self.vla.net.parameters()).dtype
        out = self.vla(ids.to(self.device), mask.to(self.device), pixels.to(self.device, dtype),
                       proprio.to(self.device), generative_frames=frames)  # fmt: skip
        return proc.unnormalize_actions(out.actions[0].float().cpu().numpy())


def _sized(image: np.ndarray, size: int) -> np.ndarray:
    """The image the policy sees (bicubic to ``size`` when it is not already that size, as its processor does)."""
    if image.shape[:2] == (size, size):
        return np.ascontiguousarray(image)
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BICUBIC))


def _simulator(recorded: dict | None, given, device):
    if given is not None and not isinstance(given, (str, Path)):
        return given
    from vega3d.mllm.infer import simulator_from_record

    return simulator_from_record(recorded, device=device, path=given)
