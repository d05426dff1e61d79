"""``vega3d demo``: the main job on the built-in defaults (filled in when the simulator and scenes land)."""


def register(subparsers) -> None:
    """Add the ``demo`` subcommand."""
