"""Measure one campaign on a fleet of devices through a Ray cluster (``--fleet``).

Each host with a device runs ``latbench-measure worker`` (:mod:`.worker`), which checks
the profile and starts a Ray node advertising one custom resource per attached device
(:mod:`.resources`). The driver (:class:`~.executor.FleetExecutor`, the Ray side of the
executor seam of :func:`latbench.harness.session.measure`) builds artifacts as CPU tasks
on any node, times them on one actor per device (:mod:`.device`), re-queues the graphs
of a device that drops out, and streams results back to the one crash-safe store. Every
device first times the same anchor graphs (:mod:`.anchors`) so that its speed relative
to the fleet is recorded and checked. Ray is imported only here and only when used:
``pip install "latbench[fleet]"``.
"""

from __future__ import annotations

from types import ModuleType

__all__ = ["FleetError", "require_ray"]

INSTALL_HINT = 'pip install "latbench[fleet]"'


class FleetError(RuntimeError):
    """The fleet cannot run: Ray missing, no cluster, no device, a device out of spread."""


def require_ray() -> ModuleType:
    """The ``ray`` module, or :class:`FleetError` saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise FleetError(
            f"--fleet and 'latbench-measure worker' need Ray, which is not installed "
            f"({exc}): {INSTALL_HINT}"
        ) from None
    return ray
