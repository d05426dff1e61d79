"""Stand-ins: small models with the real architectures, written to disk in the real layouts.

vega3d never downloads anything, so its tests and demo run on stand-ins: models with the
architecture and folder layout of the real checkpoints (Wan2.1-T2V, Qwen2.5-VL, ...) at tiny
widths, with random weights (or, for a small model trained here, weights that are not the real
model's). Everything that loads the real model loads a stand-in through the same code path.

A stand-in folder holds :data:`MARKER`, which says what it is; this module is the one place
that writes it (:func:`write_marker`), recognises it (:func:`is_stand_in`; trained or random:
:func:`is_trained_stand_in`), collects which
inputs of a run are stand-ins (:func:`stand_in_parts`, over folders and recorded configs) and
words the notice (:func:`notice`). The builders live beside it: :mod:`vega3d.standin.wan`,
:mod:`vega3d.standin.qwen` and :mod:`vega3d.standin.data` (a tiny training setup).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

#: The marker file of every stand-in folder.
MARKER = "STAND_IN.md"
#: The marker's sentence for weights trained here (:func:`is_trained_stand_in` looks for it).
TRAINED_WHAT = "A small model trained by vega3d."
#: The marker's note for a world model trained on a random VAE (``vega3d train-world`` without ``model.vae``).
RANDOM_VAE_NOTE = (
    "Its DiT was trained on the latents of a VAE with random weights: its features say nothing about space."
)

_MARKER_TEXT = """# vega3d stand-in — NOT {real}

{what} It has the architecture and the on-disk layout of {real}, so that code, tests and demos
run without the real weights; {meaning}

Written by `{writer}`. Recipe: {recipe}
"""


def write_marker(folder, *, real: str, writer: str, recipe: dict | None = None, trained: bool = False,
                 note: str = "") -> Path:  # fmt: skip
    """Mark ``folder`` as a stand-in for ``real`` (e.g. "Wan2.1-T2V-1.3B"); ``writer`` names the
    function that wrote it, ``recipe`` its arguments. ``trained``: the weights were trained here
    (a small model), not drawn at random; ``note``: a sentence after that. Returns the marker's path."""
    if trained:
        what, meaning = TRAINED_WHAT, "its features are those of a small model, not of the real one."
    else:
        what, meaning = "A small model with **random weights**.", "its outputs are meaningless."
    what = f"{what} {note}".strip()
    path = Path(folder) / MARKER
    path.write_text(_MARKER_TEXT.format(real=real, what=what, meaning=meaning, writer=writer,
                                        recipe=json.dumps(recipe or {}, sort_keys=True)))  # fmt: skip
    return path


def is_stand_in(folder) -> bool:
    """True when ``folder`` is a stand-in (holds :data:`MARKER`)."""
    return (Path(folder) / MARKER).is_file()


def is_trained_stand_in(folder) -> bool:
    """True when ``folder`` is a stand-in whose marker says its weights were trained here (a small
    model trained by vega3d, ``write_marker(..., trained=True)``), not drawn at random."""
    marker = Path(folder) / MARKER
    return marker.is_file() and TRAINED_WHAT in marker.read_text()


def stand_in_label(folder) -> str:
    """What a stand-in model folder holds, for labels: "random weights", "trained small model" or
    "trained small model, random VAE" (a world model trained on a VAE with random weights)."""
    marker = Path(folder) / MARKER
    text = marker.read_text() if marker.is_file() else ""
    if TRAINED_WHAT not in text:
        return "random weights"
    return "trained small model, random VAE" if RANDOM_VAE_NOTE in text else "trained small model"


def _says_stand_in(value) -> bool:
    if value is None or value is False:
        return False
    if value is True:
        return True
    if isinstance(value, (str, Path)):
        return bool(str(value)) and is_stand_in(value)
    if isinstance(value, Mapping):
        return value.get("stand_in") is True or any(
            _says_stand_in(v) for v in value.values() if isinstance(v, (Mapping, list, tuple))
        )
    if isinstance(value, (list, tuple)):  # of configs: a list of bools (e.g. a VAE's temperal_downsample) says nothing
        return any(_says_stand_in(v) for v in value if isinstance(v, (Mapping, list, tuple)))
    return getattr(value, "stand_in", False) is True


def stand_in_parts(**named) -> list[str]:
    """The names of the inputs that are stand-ins, in the order given.

    Each value is a model folder (a stand-in when it holds :data:`MARKER`), a recorded config
    (a mapping — a simulator's, a feature store's, a checkpoint's — that says ``stand_in: true``
    at any depth), an object whose ``stand_in`` attribute is true, a bool, or None (not given).
    ``stand_in_parts(base=folder, simulator=sim.config.to_dict())`` → e.g. ``["simulator"]``.
    """
    return [name for name, value in named.items() if _says_stand_in(value)]


def notice(parts: list[str], consequence: str) -> str | None:
    """The one-paragraph warning for a run on stand-ins, or None when ``parts`` is empty:
    ``NOTE: small STAND-IN(s), not the real model: <parts>. <consequence>``."""
    if not parts:
        return None
    return f"NOTE: small STAND-IN(s), not the real model: {'; '.join(parts)}. {consequence}"
