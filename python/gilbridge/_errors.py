"""The one place where host errors become Python exceptions.

The host answers a failed call with a gRPC status whose details string is the message and
a trailing-metadata entry ``bridge-exception`` naming the Python exception to raise (see
protos/bridge/v1/synchronization.proto). :func:`translate` turns a ``grpc.RpcError`` into
that exception; statuses without the trailer fall back on the status code.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:  # pragma: no cover
    import grpc

__all__ = ["BridgeError", "HostUnavailableError", "ObjectLostError", "translate", "EXCEPTION_TRAILER"]

EXCEPTION_TRAILER: Final = "bridge-exception"


class BridgeError(RuntimeError):
    """A host failure that maps to no more specific Python exception."""


class HostUnavailableError(ConnectionError):
    """The Bridge host cannot be reached at the configured address."""


class ObjectLostError(FileNotFoundError):
    """A shared object's state was lost with the cluster host that held it (gRPC
    ``DATA_LOSS``). The message names the object and the host. Creating the name again
    makes a new, empty object; references to the lost one keep raising this."""


_BY_NAME: Final[dict[str, type[BaseException]]] = {
    "ValueError": ValueError,
    "TypeError": TypeError,
    "AssertionError": AssertionError,
    "RuntimeError": RuntimeError,
    "IndexError": IndexError,
    "AttributeError": AttributeError,
    "FileNotFoundError": FileNotFoundError,
    "FileExistsError": FileExistsError,
    "BrokenBarrierError": threading.BrokenBarrierError,
    "ConnectionResetError": ConnectionResetError,
    "ObjectLostError": ObjectLostError,
}

# Used when the host sent no (or an unknown) "bridge-exception" trailer.
_BY_CODE: Final[dict[str, type[BaseException]]] = {
    "INVALID_ARGUMENT": ValueError,
    "OUT_OF_RANGE": ValueError,
    "RESOURCE_EXHAUSTED": ValueError,
    "NOT_FOUND": FileNotFoundError,
    "ALREADY_EXISTS": FileExistsError,
    "FAILED_PRECONDITION": RuntimeError,
    "PERMISSION_DENIED": PermissionError,
    "UNAUTHENTICATED": PermissionError,
    "DEADLINE_EXCEEDED": TimeoutError,
    "DATA_LOSS": ObjectLostError,
}


def exception_name(err: grpc.RpcError) -> str | None:
    """The ``bridge-exception`` trailer of a failed call, if any."""
    try:
        trailers = err.trailing_metadata()  # type: ignore[attr-defined]
    except Exception:
        return None
    for key, value in trailers or ():
        if key == EXCEPTION_TRAILER:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


def translate(err: grpc.RpcError, address: str) -> BaseException:
    """The Python exception for a failed call to the host at ``address``."""
    code = err.code()  # type: ignore[attr-defined]
    code_name = getattr(code, "name", str(code))
    details = err.details() or ""  # type: ignore[attr-defined]
    if code_name == "UNAVAILABLE":
        return HostUnavailableError(
            f"Bridge host unavailable at {address}: {details or 'no answer'}"
        )
    name = exception_name(err)
    exc_type = _BY_NAME.get(name) if name else None
    if exc_type is None:
        exc_type = _BY_CODE.get(code_name)
    if exc_type is None:
        return BridgeError(f"host call failed ({code_name}): {details}")
    return exc_type(details)
