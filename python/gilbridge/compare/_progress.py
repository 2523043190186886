"""Progress on stderr: a tqdm bar when tqdm imports, else one line per step."""

from __future__ import annotations

import sys
from typing import Any


class Progress:
    """Counts steps (one timed or warm-up sample each) towards ``total``."""

    def __init__(self, total: int, use_tqdm: bool = True) -> None:
        self._total = total
        self._done = 0
        self._bar: Any = None
        if use_tqdm:
            try:
                from tqdm import tqdm
            except ImportError:
                pass
            else:
                self._bar = tqdm(total=total, file=sys.stderr, unit="step", dynamic_ncols=True,
                                 bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}]")

    def step(self, what: str) -> None:
        """One step done; ``what`` says which."""
        self._done += 1
        if self._bar is not None:
            self._bar.set_description_str(what[:60], refresh=False)
            self._bar.update(1)
        else:
            print(f"[{self._done}/{self._total}] {what}", file=sys.stderr, flush=True)

    def skip(self, count: int) -> None:
        """``count`` steps that will not run (their contender failed)."""
        if count <= 0:
            return
        self._done += count
        if self._bar is not None:
            self._bar.update(count)

    def note(self, message: str) -> None:
        """A line that is not a step (a setup failure, a restart)."""
        if self._bar is not None:
            self._bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
