"""Targets for stdlib multiprocessing children (importable by spawn children)."""

from __future__ import annotations

import os
import pickle
from typing import Any


def use_everything(objs: dict[str, Any], blob: bytes) -> None:
    """Exercise proxies received as Process arguments and as a pickle blob."""
    pickled = pickle.loads(blob)
    assert pickled["queue"].name == objs["queue"].name
    lock, rlock, sem = objs["lock"], objs["rlock"], objs["sem"]
    with lock:
        objs["counter"].value += 1
    with rlock:
        with rlock:
            pass
    assert sem.acquire(timeout=10)
    objs["array"][0] = 42
    pickled["array"][1] = 43
    with objs["cond"]:
        objs["cond"].notify_all()
    objs["queue"].put(("hello", os.getpid()))
    pickled["queue"].put(("again", os.getpid()))
    jq = objs["jq"]
    item = jq.get(timeout=10)
    jq.task_done()
    objs["results"].put(("jq item", item))
    objs["barrier"].wait(30)
    objs["event"].set()
