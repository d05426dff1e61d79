"""Reading JSON files given by users or written by vega3d, with errors that name the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vega3d.errors import Vega3DError


def read_json(path, what: str) -> Any:
    """The parsed content of ``path``; :class:`Vega3DError` naming ``what`` and the file when it
    is missing or is not valid (UTF-8) JSON."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise Vega3DError(f"{what}: {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise Vega3DError(f"{what}: {path} is not valid JSON ({err})") from None
