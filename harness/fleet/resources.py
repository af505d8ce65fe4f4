"""Names of the Ray custom resources that stand for devices.

A worker advertises ``latbench/<profile>@<device id>: 1`` for each device it drives, so
one actor holding that resource is the only thing that ever times on that device. A
device id is ``<host>/<slot>``: the slot is ``0`` for a host's one device, or
``serial=<adb serial>`` for one of several phones on the host, which also tells the
device's runner which phone to use (its ``[options] serial``), or ``cpus=2-3`` for
one of several CPU devices of a node (its actor is pinned to those cores).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

__all__ = [
    "PREFIX",
    "device_options",
    "device_resource",
    "devices_in",
    "duplicate_devices",
    "make_device_id",
]

PREFIX = "latbench/"

_SAFE = re.compile(r"^[A-Za-z0-9._:=,-]+$")


def make_device_id(host: str, slot: str = "0") -> str:
    """``<host>/<slot>``; :class:`ValueError` for characters a resource name should not hold."""
    for part, what in ((host, "host name"), (slot, "device slot")):
        if not _SAFE.match(part):
            raise ValueError(
                f"{what} {part!r} may only hold letters, digits and . _ : = , - (no spaces or /)"
            )
    return f"{host}/{slot}"


def device_resource(profile: str, device_id: str) -> str:
    """The resource a device of ``profile`` is advertised under."""
    return f"{PREFIX}{profile}@{device_id}"


def device_options(device_id: str) -> dict[str, str]:
    """Runner option overrides a device id carries (``host/serial=X`` -> ``{"serial": "X"}``)."""
    slot = device_id.rpartition("/")[2]
    key, sep, value = slot.partition("=")
    return {key: value} if sep else {}


def _advertised(
    nodes: Iterable[Mapping[str, Any]], profile: str
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """``(device id, node)`` for every device of ``profile`` a live node advertises."""
    head = f"{PREFIX}{profile}@"
    for node in nodes:
        if node.get("Alive"):
            for name in node.get("Resources", {}):
                if name.startswith(head):
                    yield name[len(head) :], node


def devices_in(nodes: Iterable[Mapping[str, Any]], profile: str) -> dict[str, dict[str, Any]]:
    """Device id -> ``{"node_id", "node_ip"}`` of every live node advertising ``profile``.

    ``nodes`` is what ``ray.nodes()`` returns.
    """
    return {
        dev: {"node_id": node.get("NodeID"), "node_ip": node.get("NodeManagerAddress")}
        for dev, node in _advertised(nodes, profile)
    }


def duplicate_devices(nodes: Iterable[Mapping[str, Any]], profile: str) -> dict[str, list[str]]:
    """Device ids of ``profile`` that two or more live nodes advertise -> their addresses.

    Only one actor can hold a device's resource, so the second node would sit idle.
    """
    seen: dict[str, list[str]] = {}
    for dev, node in _advertised(nodes, profile):
        seen.setdefault(dev, []).append(str(node.get("NodeManagerAddress")))
    return {d: ips for d, ips in seen.items() if len(ips) > 1}
