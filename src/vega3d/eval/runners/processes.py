"""The processes of a run: this one's rank among them, where they meet, each one's share.

Under ``accelerate launch`` / torchrun (``torch.distributed`` initialised) each process answers a
contiguous share of the work; they meet (a barrier) after reading the answers already there and
after answering, and process 0 merges, scores and prints. A caller may name the rank, the count and
the barrier itself.
"""

from __future__ import annotations

from collections.abc import Callable

from vega3d.errors import Vega3DError


def process(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """This process's rank and the number of processes: as given (both, ``0 <= rank < world_size``),
    else from ``torch.distributed`` if initialised, else ``(0, 1)``."""
    if rank is None and world_size is None:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1
    if rank is None or world_size is None or not 0 <= rank < world_size:
        raise Vega3DError(f"rank/world_size: expected both, 0 <= rank < world_size; got {rank!r}/{world_size!r}")
    return int(rank), int(world_size)


def _distributed_barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def meeting(barrier: Callable | None, world_size: int) -> Callable[[], None]:
    """Where the processes meet: ``barrier`` (default: ``torch.distributed``'s) when there are several."""
    return (barrier or _distributed_barrier) if world_size > 1 else (lambda: None)


def share(todo: list, rank: int, world_size: int) -> list:
    """Process ``rank``'s contiguous share of ``todo``."""
    return todo[rank * len(todo) // world_size : (rank + 1) * len(todo) // world_size]
