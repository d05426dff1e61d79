"""Subcommands of this subpackage (see ``vega3d.cli``)."""


def register(subparsers) -> None:
    """Add this subpackage's subcommands to ``subparsers``."""
