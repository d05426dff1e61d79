"""Progress of long jobs: a tqdm bar on a terminal, plain lines in a log.

tqdm redraws its bar with carriage returns, which a log file (stderr redirected, a cluster job)
keeps as debris. :func:`progress` gives a tqdm bar when stderr is a terminal and otherwise a
:class:`LineProgress` with the same small interface (``update``, ``set_postfix``, ``close``,
iteration, ``with``) that prints one plain line at every tenth of the way and at the end.
"""

from __future__ import annotations

import sys
import time


def progress(iterable=None, *, total: int | None = None, desc: str = "", unit: str = "it", initial: int = 0,
             enabled: bool = True, leave: bool = True):  # fmt: skip
    """A progress bar over ``iterable`` (or a manual one of ``total`` steps); nothing shown when
    ``enabled`` is False. On a terminal: tqdm; elsewhere: :class:`LineProgress`."""
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)
    if enabled and sys.stderr.isatty():
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, leave=leave)
    return LineProgress(iterable, total=total, desc=desc, unit=unit, initial=initial, enabled=enabled)


class LineProgress:
    """Plain-line progress for logs: ``desc: n/total unit (pct%, elapsed, postfix)`` at each
    tenth of ``total`` (every 100 steps when the total is unknown) and once at :meth:`close`."""

    def __init__(self, iterable=None, *, total=None, desc="", unit="it", initial=0, enabled=True):
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.n, self.enabled, self.postfix = initial, enabled, ""
        self._start, self._shown, self._closed = time.time(), initial, False

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def set_postfix(self, **values) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def update(self, n: int = 1) -> None:
        self.n += n
        step = max(1, self.total // 10) if self.total else 100
        if self.n // step > self._shown // step:
            self._line()

    def close(self) -> None:
        if not self._closed and self.n != self._shown:
            self._line()
        self._closed = True

    def _line(self) -> None:
        self._shown = self.n
        if not self.enabled:
            return
        of = f"/{self.total}" if self.total else ""
        pct = f"{100 * self.n / self.total:.0f}%, " if self.total else ""
        extra = f", {self.postfix}" if self.postfix else ""
        print(f"{self.desc}: {self.n}{of} {self.unit} ({pct}{time.time() - self._start:.0f} s{extra})",
              file=sys.stderr, flush=True)  # fmt: skip
