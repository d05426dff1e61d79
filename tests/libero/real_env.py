"""The marks of a test that runs real LIBERO episodes: skipped, with the reason, without the ``libero``
extra or a headless GL library; ``slow``."""

import pytest

from vega3d.errors import Vega3DError
from vega3d.libero.env import INSTALL_HINT, libero_installed, resolve_gl


def skip_reason() -> str | None:
    """Why real episodes cannot run here, or None."""
    if not libero_installed():
        return f"the libero extra is not installed ({INSTALL_HINT})"
    try:
        resolve_gl("auto")
    except Vega3DError as err:
        return str(err)
    return None


REAL_LIBERO = [pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason())), pytest.mark.slow]
