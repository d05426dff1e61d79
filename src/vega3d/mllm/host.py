"""What the host LLMs of the generative branch share (:class:`~vega3d.mllm.model.Vega3DQwen`,
:class:`~vega3d.mllm.video3d_llm.model.Video3DLLM`): the attached simulator
(:class:`~vega3d.simulator.attached.AttachedSimulator`) and which of their parts are stand-ins."""

from __future__ import annotations

from vega3d.simulator.attached import AttachedSimulator
from vega3d.standin import notice, stand_in_parts


class HostLLM(AttachedSimulator):
    """Mixin of the host LLMs: a ``config`` with ``base_model`` and ``simulator`` (the recorded
    simulator, the one the training features came from), ``recorded_stand_in`` (a loaded
    checkpoint's top-level ``stand_in`` flag, else False) and ``_stand_in_names()`` (how a notice
    names each part)."""

    def stand_in_parts(self) -> list[str]:
        """Which parts of this model are small stand-ins, as short keys (empty for real weights):

        - ``"base"``: the base folder holds the stand-in marker (:data:`vega3d.standin.MARKER`);
        - ``"simulator"``: the attached simulator says ``stand_in`` (or, with none attached, the
          simulator the config records does — the one the training features came from);
        - ``"features"``: a real simulator is attached but the recorded one (the training
          features) says ``stand_in``;
        - ``"model"``: none of the above can tell, but the checkpoint's top-level ``stand_in``
          flag says so (``recorded_stand_in``; e.g. its base folder moved).
        """
        attached, recorded = self.simulator, self.config.simulator
        real_attached = attached is not None and not stand_in_parts(simulator=attached)
        parts = stand_in_parts(
            base=self.config.base_model,
            simulator=attached if attached is not None else recorded,
            features=recorded if real_attached else None,
        )
        return parts or stand_in_parts(model=self.recorded_stand_in)

    @property
    def stand_in(self) -> bool:
        """True when any part is a stand-in (:meth:`stand_in_parts`)."""
        return bool(self.stand_in_parts())

    def stand_in_notice(self, consequence: str) -> str | None:
        """:func:`vega3d.standin.notice` naming each of :meth:`stand_in_parts` (None without)."""
        names = self._stand_in_names()
        return notice([names[p] for p in self.stand_in_parts()], consequence)

    def trainable_names(self) -> list[str]:
        return [n for n, p in self.named_parameters() if p.requires_grad]
