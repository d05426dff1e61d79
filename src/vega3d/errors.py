"""The project's one exception type.

Every error raised on bad user input (a missing file, a wrong shape, a value out of
range, a malformed record) is a :class:`Vega3DError`. It subclasses ``ValueError`` so
callers that already catch bad values keep working. Messages name the file, field or
shape, what was found, and what was expected.
"""


class Vega3DError(ValueError):
    """Bad input to vega3d: the message says what was found and what was expected."""
