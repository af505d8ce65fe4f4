"""The fleet's head node seen from outside Ray: is it there, is it Ray, is it still there?

Ray itself retries a missing or foreign head for minutes and, when the head dies under
a running driver, ends the driver's process from its C++ core with no message. So the
fleet asks first (a TCP connect, then one GCS call with a timeout: :func:`head_nodes`)
and, while a run goes on, a :class:`HeadWatch` thread connects to the head every
second, so the driver can say in one line that the head is gone before Ray acts.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

from latbench.harness.fleet import FleetError

__all__ = ["HeadWatch", "head_nodes", "split_address", "tcp_check"]


def split_address(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of ``host:port`` (or ``ray://host:port``); None for ``auto``."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def tcp_check(address: str, timeout_s: float = 5.0, *, what: str = "the Ray head") -> None:
    """:class:`FleetError` unless something accepts a TCP connection at ``address``."""
    hp = split_address(address)
    if hp is None:
        return
    try:
        socket.create_connection(hp, timeout=timeout_s).close()
    except OSError as exc:
        raise FleetError(
            f"{what} at {address!r} does not answer ({exc.strerror or exc}); start it with "
            "'ray start --head --port 6379' and check the address and the firewall"
        ) from None


def head_nodes(address: str, timeout_s: float = 5.0) -> list[dict[str, Any]]:
    """The live nodes the Ray head at ``address`` knows (``Alive``, ``Resources``, address).

    One GCS call with a ``timeout_s`` deadline, so a port that answers but is not a Ray
    head fails in seconds (:class:`FleetError`). Ray's generated GCS stubs are an
    internal API: when they cannot be imported only the TCP check is made and ``[]``
    returned.
    """
    tcp_check(address, timeout_s)
    hp = split_address(address)
    if hp is None:
        return []
    try:
        import grpc
        from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc
    except ImportError:
        return []
    target = f"{hp[0]}:{hp[1]}"
    try:
        with grpc.insecure_channel(target) as channel:
            stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)
            reply = stub.GetAllNodeInfo(gcs_service_pb2.GetAllNodeInfoRequest(), timeout=timeout_s)
    except grpc.RpcError as exc:
        code = exc.code().name if hasattr(exc, "code") else type(exc).__name__
        if code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
            return []  # a Ray head with token authentication: Ray, but not ours to list
        raise FleetError(
            f"{address!r} answers but is not a Ray head (no reply to a GCS call within "
            f"{timeout_s:.0f} s: {code}); pass the head's GCS port (ray start --head --port)"
        ) from None
    return [
        {
            "Alive": n.state == 0,  # GcsNodeInfo.ALIVE
            "NodeID": n.node_id.hex(),
            "NodeManagerAddress": n.node_manager_address,
            "Resources": dict(n.resources_total),
        }
        for n in reply.node_info_list
    ]


class HeadWatch:
    """A daemon thread that connects to the head every ``every_s``; :attr:`lost` once it fails
    ``misses`` times in a row."""

    def __init__(self, address: str, every_s: float = 1.0, misses: int = 3) -> None:
        self.address, self.every_s, self.misses = address, every_s, misses
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> HeadWatch:
        if split_address(self.address) is not None and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="latbench-head", daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        hp = split_address(self.address)
        assert hp is not None
        failed = 0
        while not self._stop.wait(self.every_s):
            try:
                socket.create_connection(hp, timeout=self.every_s).close()
                failed = 0
            except OSError as exc:
                failed += 1
                if failed >= self.misses:
                    self.lost = exc.strerror or str(exc)
                    return

    def stop(self) -> None:
        self._stop.set()
