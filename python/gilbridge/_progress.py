"""Opt-in progress reporting for long maps: the ``progress=`` keyword of ``Pool.map``,
``map_async``, ``imap``, ``imap_unordered``, ``starmap``, ``starmap_async`` and
``ProcessPoolExecutor.map``.

What ``progress`` accepts:

* ``False`` or ``None`` (the default): nothing is drawn; the call behaves as the stdlib's.
* ``True``: a bar on stderr counting completed items — ``tqdm.auto.tqdm`` when tqdm is
  importable, else :class:`TextBar` (one line redrawn with ``\\r`` on a terminal, a line
  every :data:`LINE_INTERVAL` seconds and a final line otherwise).
* a ``str``: the same bar with that description.
* an object with an ``update(n)`` method (a ``tqdm`` instance you made, a wrapper around
  another library): ``update`` is called with each completed chunk's item count. It is
  never closed here: the caller owns it and may share it between several maps.
* any other callable: called as ``fn(n)`` with each completed chunk's item count.

The count is of items whose chunk succeeded, so a failed map's bar stops short of its
total. Updates run in the pool's result-handler thread as chunks complete; a bar made
here is closed when the job completes, fails or its pool is terminated. The total is
the iterable's ``len()`` when it has one (``map`` and ``ProcessPoolExecutor.map`` always
know it), else unknown. A reporter that raises is disabled for the rest of the job, with
one line on stderr: it never breaks the map.
"""

from __future__ import annotations

import functools
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol, Union, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    from concurrent.futures import Future

__all__ = ["LINE_INTERVAL", "Progress", "ProgressOption", "SupportsUpdate", "TextBar", "check_option",
           "open_progress", "track_futures"]

# The built-in bar: redraws on a terminal at most this often (seconds) ...
REDRAW_INTERVAL: Final = 0.1
# ... and elsewhere (a log file, a pipe) writes a line at most this often.
LINE_INTERVAL: Final = 10.0
_BAR_WIDTH: Final = 20


@runtime_checkable
class SupportsUpdate(Protocol):
    """A caller-owned progress object (``tqdm`` and look-alikes)."""

    def update(self, n: int) -> object: ...


ProgressOption = Union[bool, str, SupportsUpdate, Callable[[int], object], None]


class Progress:
    """The progress of one job: forwards completed item counts to a reporter, closes the
    reporter once (when this module made it), and never raises. Thread-safe."""

    __slots__ = ("_update", "_close", "_lock", "_closed")

    def __init__(self, update: Callable[[int], object], close: Callable[[], object] | None) -> None:
        self._update: Callable[[int], object] | None = update
        self._close = close
        self._lock = threading.Lock()
        self._closed = False

    def update(self, n: int) -> None:
        """Count ``n`` more completed items (ignored once closed)."""
        if n <= 0:
            return
        with self._lock:
            if self._closed or self._update is None:
                return
            try:
                self._update(n)
            except Exception as exc:  # noqa: BLE001 - a reporter must not break the map
                self._fail(exc)

    def close(self) -> None:
        """Close the reporter if this module made it; later calls do nothing."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            close, self._close = self._close, None
            if close is None or self._update is None:
                return
            try:
                close()
            except Exception as exc:  # noqa: BLE001
                self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        self._update = None
        close, self._close = self._close, None
        _report(exc)
        if close is not None:
            try:
                close()
            except Exception:  # noqa: BLE001 - already reported the first failure
                pass


def _report(exc: BaseException) -> None:
    stream = sys.stderr
    if stream is None:
        return
    try:
        print(f"gilbridge: progress reporting failed and is off for this job: {exc!r}", file=stream)
    except (OSError, ValueError):
        pass


def open_progress(progress: ProgressOption, total: int | None = None, *,
                  sized: object = None) -> Progress | None:
    """The reporter ``progress`` asks for (see the module docstring), or None for no
    progress. The total is ``total``, else ``len(sized)`` when ``sized`` has a length
    (asked only when progress is on), else unknown. Raises TypeError for a ``progress``
    of another kind. Making a bar imports tqdm the first time (tens of milliseconds); a
    bar that cannot be made is reported on stderr and the job runs without one."""
    if progress is None or progress is False:
        return None
    if progress is True or isinstance(progress, str):
        description = progress if isinstance(progress, str) and progress else None
        if total is None and sized is not None:
            total = _length_of(sized)
        try:
            return _make_bar(total, description)
        except Exception as exc:  # noqa: BLE001 - no bar, but the map runs
            _report(exc)
            return None
    check_option(progress)
    if isinstance(progress, SupportsUpdate):
        return Progress(progress.update, None)
    return Progress(progress, None)  # type: ignore[arg-type]


def check_option(progress: object) -> None:
    """TypeError unless ``progress`` is a value :func:`open_progress` accepts."""
    if progress is None or isinstance(progress, (bool, str, SupportsUpdate)) or callable(progress):
        return
    raise TypeError(f"progress must be a bool, a str, an object with update(n) or a "
                    f"callable, not {type(progress).__name__}")


def _length_of(sized: object) -> int | None:
    try:
        return len(sized)  # type: ignore[arg-type]
    except Exception:  # noqa: BLE001 - no usable __len__: the total is unknown
        return None


def _make_bar(total: int | None, description: str | None) -> Progress:
    try:
        from tqdm.auto import tqdm
    except ImportError:
        bar: Any = TextBar(total, description)
    else:
        bar = tqdm(total=total, desc=description)
    return Progress(bar.update, bar.close)


class TextBar:
    """The bar used when tqdm is not installed, written to ``sys.stderr`` (looked up at
    each write, so redirections apply).

    On a terminal: one line, ``desc: 45%|#########           | 45/100 [00:03, 15.0 items/s]``,
    redrawn with ``\\r`` at most every :data:`REDRAW_INTERVAL` seconds and ended with a
    newline by :meth:`close`. Elsewhere: the same text as a line at most every
    :data:`LINE_INTERVAL` seconds, and a final line at :meth:`close`. Not thread-safe
    (:class:`Progress` serializes calls).
    """

    def __init__(self, total: int | None, description: str | None = None) -> None:
        self.total = total
        self.description = description
        self.n = 0
        self._start = time.monotonic()
        self._last_write = self._start
        self._written_n = -1
        stream = sys.stderr
        try:
            self._tty = bool(stream is not None and stream.isatty())
        except (AttributeError, OSError, ValueError):
            self._tty = False
        if self._tty:
            self._write(self._start)

    def update(self, n: int) -> None:
        self.n += n
        now = time.monotonic()
        if now - self._last_write >= (REDRAW_INTERVAL if self._tty else LINE_INTERVAL):
            self._write(now)

    def close(self) -> None:
        now = time.monotonic()
        if self._tty:
            self._write(now)
            self._emit("\n")
        elif self._written_n != self.n:
            self._write(now)

    def render(self, now: float) -> str:
        elapsed = now - self._start
        rate = f", {self.n / elapsed:.1f} items/s" if elapsed > 0 and self.n else ""
        clock = f"{int(elapsed) // 60:02d}:{int(elapsed) % 60:02d}"
        prefix = f"{self.description}: " if self.description else ""
        if self.total:
            fraction = min(1.0, self.n / self.total)
            filled = int(fraction * _BAR_WIDTH)
            bar = "#" * filled + " " * (_BAR_WIDTH - filled)
            return f"{prefix}{int(fraction * 100):3d}%|{bar}| {self.n}/{self.total} [{clock}{rate}]"
        if self.total == 0:
            return f"{prefix}0/0 [{clock}]"
        return f"{prefix}{self.n} items [{clock}{rate}]"

    def _write(self, now: float) -> None:
        text = self.render(now)
        self._last_write = now
        self._written_n = self.n
        self._emit(f"\r{text}\x1b[K" if self._tty else text + "\n")

    @staticmethod
    def _emit(text: str) -> None:
        stream = sys.stderr
        if stream is None:
            return
        stream.write(text)
        stream.flush()


def track_futures(progress: ProgressOption, futures: Sequence[Future], sizes: Sequence[int]) -> None:  # type: ignore[type-arg]
    """Report ``futures`` (one per chunk of ``sizes[i]`` items) to a reporter opened for
    ``progress`` with their item total; a bar made here is closed once every future is
    done (finished, failed or cancelled). Updates run where the future finishes (the
    executor's result handler, or the thread that cancels it)."""
    bar = open_progress(progress, sum(sizes))
    if bar is None:
        return
    if not futures:
        bar.close()
        return
    _FutureCounter(bar, len(futures)).watch(futures, sizes)


class _FutureCounter:
    __slots__ = ("_bar", "_remaining", "_lock")

    def __init__(self, bar: Progress, count: int) -> None:
        self._bar = bar
        self._remaining = count
        self._lock = threading.Lock()

    def watch(self, futures: Sequence[Future], sizes: Sequence[int]) -> None:  # type: ignore[type-arg]
        for future, size in zip(futures, sizes):
            future.add_done_callback(functools.partial(self._done, size=size))

    def _done(self, future: Future, size: int) -> None:  # type: ignore[type-arg]
        if not future.cancelled() and future.exception(0) is None:
            self._bar.update(size)
        with self._lock:
            self._remaining -= 1
            last = self._remaining == 0
        if last:
            self._bar.close()
