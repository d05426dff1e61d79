"""Each scene's video / scan read once per run, the next one read ahead.

The runner answers its questions grouped by media (:mod:`vega3d.eval.run`), so every
media path is needed for one contiguous stretch of batches. :class:`MediaReader` reads a
path once with the answerer's ``prepare`` (the same frames and preprocessing as
``answer(path)``), hands the prepared video to every batch that asks for it, and forgets
it when the run moves on to a later path. With ``read_ahead`` the next path is read in one
background thread (:mod:`concurrent.futures`) while the current batches generate;
reading is a pure function of the path, so answers do not depend on it. At most two
prepared videos are held (the current and the next one). A read error is raised by
:meth:`MediaReader.get` for the path that failed, when that path is asked for.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor


class MediaReader:
    """``get(path)`` → ``prepare(path)``, computed once per path. ``order``: the distinct
    paths in the order they will be asked for; asking for a path releases the ones before
    it. A context manager (stops the read-ahead thread)."""

    def __init__(self, prepare, order: list, read_ahead: bool = True):
        self._prepare = prepare
        self._order = list(dict.fromkeys(order))
        self._position = {path: i for i, path in enumerate(self._order)}
        self._pending: dict[int, Future] = {}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="media-read") if read_ahead else None
        self.reads = 0

    def _start(self, index: int) -> None:
        if index >= len(self._order) or index in self._pending:
            return
        self.reads += 1
        path = self._order[index]
        if self._pool is None:
            future = Future()
            try:
                future.set_result(self._prepare(path))
            except BaseException as err:  # noqa: BLE001 - re-raised by get()
                future.set_exception(err)
        else:
            future = self._pool.submit(self._prepare, path)
        self._pending[index] = future

    def get(self, path):
        """The prepared media for ``path`` (one of ``order``, not before the last one asked)."""
        index = self._position.get(path)
        assert index is not None, f"media reader: {path} is not among the run's media"
        for old in [i for i in self._pending if i < index]:
            self._pending.pop(old).cancel()
        self._start(index)
        if self._pool is not None:
            self._start(index + 1)
        return self._pending[index].result()

    def close(self) -> None:
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def __enter__(self) -> MediaReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
