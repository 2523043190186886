"""``gilbridge host status`` in detail: the host's sessions, objects and pools.

:func:`fetch` asks the host (``Sessions.GetHostStatus``); :func:`as_dict` turns the answer
into plain JSON-ready data (what ``--json`` prints; ints stay ints, enums are names);
:func:`render` lays it out as three tables for people.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:  # pragma: no cover
    from ._host import Address
    from ._proto.bridge.v1 import sessions_pb2

__all__ = ["as_dict", "fetch", "render"]

# The host answers within its own 2 s object deadline; this leaves room for the rest.
DEFAULT_TIMEOUT: Final = 10.0

_SHORT_ID: Final = 8


def fetch(address: Address, max_objects: int = 0,
          timeout: float = DEFAULT_TIMEOUT) -> sessions_pb2.HostStatus | None:
    """The host's status, or None when the host is too old to answer it
    (UNIMPLEMENTED). Raises ConnectionError and the like as other calls do."""
    from ._host import import_grpc

    grpc = import_grpc()
    from ._proto.bridge.v1 import sessions_pb2, sessions_pb2_grpc

    channel = address.open_channel(grpc)
    try:
        stub = sessions_pb2_grpc.SessionsStub(channel)
        try:
            return stub.GetHostStatus(sessions_pb2.HostStatusRequest(max_objects=max_objects),
                                      timeout=timeout, metadata=address.metadata())
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.UNIMPLEMENTED:
                return None
            from ._errors import translate

            raise translate(err, address.target) from None
    finally:
        channel.close()


def _kind_name(kind: int) -> str:
    from ._proto.bridge.v1 import common_pb2

    return "" if kind == 0 else common_pb2.ObjectKind.Name(kind)


def _object_dict(obj: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "kind": _kind_name(obj.kind),
        "family": obj.family,
        "name": obj.name,
        "anonymous": obj.anonymous,
        "sessions": obj.sessions,
        "waiters": obj.waiters,
        "answered": obj.WhichOneof("state") is not None,
    }
    state = obj.WhichOneof("state")
    if state == "lock":
        lock = obj.lock
        item["lock"] = {"value": lock.value, "initial_value": lock.initial_value,
                        "holders": len(lock.holder_sessions),
                        "holder_sessions": list(lock.holder_sessions),
                        "depth": lock.depth, "cached": lock.cached}
    elif state == "event":
        item["event"] = {"set": obj.event.set}
    elif state == "condition":
        item["condition"] = {"lock_name": obj.condition.lock_name,
                             "lock_kind": _kind_name(obj.condition.lock_kind)}
    elif state == "barrier":
        barrier = obj.barrier
        item["barrier"] = {"parties": barrier.parties, "waiting": barrier.waiting,
                           "broken": barrier.broken}
    elif state == "queue":
        queue = obj.queue
        item["queue"] = {"size": queue.size, "maxsize": queue.maxsize, "leased": queue.leased,
                         "reserved": queue.reserved, "unfinished_tasks": queue.unfinished_tasks,
                         "getters": queue.getters, "putters": queue.putters,
                         "joiners": queue.joiners}
    elif state == "value":
        value = obj.value
        item["value"] = {"typecode": value.typecode, "length": value.length,
                         "is_array": value.is_array, "lock_name": value.lock_name}
    return item


def as_dict(address: str, info: sessions_pb2.HostInfo,
            status: sessions_pb2.HostStatus | None) -> dict[str, Any]:
    """Everything ``host status`` knows, as plain data (``--json``)."""
    result: dict[str, Any] = {
        "running": True,
        "address": address,
        "host": {
            "version": info.version, "pid": info.pid, "host_id": info.host_id,
            "cluster_id": info.cluster_id, "sessions": info.active_sessions,
            "uptime_seconds": info.uptime_seconds, "cpu_count": info.cpu_count,
            "max_payload_bytes": info.max_payload_bytes,
            "members": [{"host_id": m.host_id, "silo_address": m.silo_address,
                         "status": m.status, "workers": m.workers,
                         "workers_in_pools": m.workers_in_pools} for m in info.members],
        },
        "detail": status is not None,
    }
    if status is None:
        return result
    result["workers"] = {"running": status.workers, "in_pools": status.workers_in_pools}
    result["sessions"] = [
        {"session_id": s.session_id, "client_name": s.client_name, "pid": s.pid,
         "language": s.language, "age_seconds": round(s.age_seconds, 3), "objects": s.objects}
        for s in status.sessions
    ]
    result["objects"] = [_object_dict(o) for o in status.objects]
    result["objects_omitted"] = status.objects_omitted
    result["objects_unanswered"] = status.objects_unanswered
    result["pools"] = [
        {"pool_id": p.pool_id, "session_id": p.session_id, "name": p.name,
         "processes": p.processes, "direct": p.direct, "process_mode": p.process_mode,
         "max_tasks_per_child": p.max_tasks_per_child, "state": p.state,
         "tasks_pending": p.tasks_pending, "tasks_running": p.tasks_running,
         "workers_starting": p.workers_starting, "part_of": p.part_of,
         "workers": [{"pid": w.pid, "state": w.state, "running": w.running,
                      "completed": w.completed} for w in p.workers]}
        for p in status.pools
    ]
    return result


def _short(identifier: str) -> str:
    return identifier[:_SHORT_ID]


def _age(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def _object_state(item: dict[str, Any]) -> str:
    """One line of an object's state, in the stdlib's words where it has them."""
    if not item["answered"]:
        return "(did not answer in time)"
    if "queue" in item:
        q = item["queue"]
        parts = [f"size {q['size']}", f"maxsize {q['maxsize'] or 'inf'}", f"leased {q['leased']}"]
        if q["reserved"]:
            parts.append(f"reserved {q['reserved']}")
        if item["kind"] == "JOINABLE_QUEUE":
            parts.append(f"unfinished {q['unfinished_tasks']}")
        waits = [f"{q[k]} {k}" for k in ("getters", "putters", "joiners") if q[k]]
        return ", ".join(parts + waits)
    if "lock" in item:
        lock = item["lock"]
        holders = ", ".join(_short(s) for s in lock["holder_sessions"])
        if item["kind"] in ("SEMAPHORE", "BOUNDED_SEMAPHORE"):
            text = f"value {lock['value']}/{lock['initial_value']}, holders {lock['holders']}"
            return text + (f" ({holders})" if holders else "")
        if not lock["holders"]:
            return "free"
        text = f"held by {holders}"
        if item["kind"] == "RLOCK":
            text += f", depth {lock['depth']}"
        return text + (", cached" if lock["cached"] else "")
    if "event" in item:
        return "set" if item["event"]["set"] else "clear"
    if "condition" in item:
        return f"over {item['condition']['lock_kind']} {item['condition']['lock_name']}"
    if "barrier" in item:
        b = item["barrier"]
        return f"{b['waiting']}/{b['parties']} waiting" + (", broken" if b["broken"] else "")
    if "value" in item:
        v = item["value"]
        shape = f"[{v['length']}]" if v["is_array"] else ""
        return f"'{v['typecode']}'{shape}"
    return ""


def _pool_workers(pool: dict[str, Any]) -> str:
    workers = [f"{w['pid']} {w['state']}" for w in pool["workers"]]
    if pool["workers_starting"]:
        workers.append(f"{pool['workers_starting']} starting")
    return ", ".join(workers) or "-"


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    cells = [list(headers)] + [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    # The last column is free text: no padding after it.
    return ["  " + "  ".join(cell.ljust(widths[i]) if i < len(headers) - 1 else cell
                             for i, cell in enumerate(row)).rstrip()
            for row in cells]


def render(data: dict[str, Any]) -> list[str]:
    """The sessions, objects and pools tables (the lines after the host's own)."""
    if not data.get("detail"):
        return ["(this host does not report sessions, objects and pools: it predates GetHostStatus)"]
    lines = [f"workers:   {data['workers']['running']} ({data['workers']['in_pools']} in pools)", ""]
    sessions = data["sessions"]
    lines.append(f"sessions ({len(sessions)}):")
    if sessions:
        lines += _table(("SESSION", "PID", "LANGUAGE", "AGE", "OBJECTS", "CLIENT"),
                        [(_short(s["session_id"]), s["pid"], s["language"], _age(s["age_seconds"]),
                          s["objects"], s["client_name"]) for s in sessions])
    objects = data["objects"]
    notes = []
    if data["objects_omitted"]:
        notes.append(f"{data['objects_omitted']} more not listed")
    if data["objects_unanswered"]:
        notes.append(f"{data['objects_unanswered']} did not answer")
    lines += ["", f"objects ({len(objects)}{'; ' + ', '.join(notes) if notes else ''}):"]
    if objects:
        lines += _table(("KIND", "NAME", "SESSIONS", "WAITERS", "STATE"),
                        [(o["kind"] or o["family"].upper(),
                          o["name"][:_SHORT_ID + 1] + "..." if o["anonymous"] else o["name"],
                          o["sessions"], o["waiters"], _object_state(o)) for o in objects])
    pools = data["pools"]
    lines += ["", f"pools ({len(pools)}):"]
    if pools:
        lines += _table(("POOL", "SESSION", "NAME", "STATE", "MODE", "TASKS", "WORKERS"),
                        [(_short(p["pool_id"]), _short(p["session_id"]), p["name"] or "-", p["state"],
                          _pool_mode(p), f"{p['tasks_running']} running, {p['tasks_pending']} pending",
                          _pool_workers(p)) for p in pools])
    return lines


def _pool_mode(pool: dict[str, Any]) -> str:
    mode = "process" if pool["process_mode"] else "direct" if pool["direct"] else "via host"
    if pool["part_of"]:
        mode += f" (part of {pool['part_of']})"
    return mode
