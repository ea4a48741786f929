"""The local Lightsail's StopInstance and StartInstance: a server stopped (as if in the console) and started.

Owns: what those operations do to an instance's record (``stopped``, which the instance's view shows as
state ``stopped``; a start sets it back to ``pending`` until the usual reads have passed, as a new instance's
would). :class:`PowerOperations` is a mixin of ``LightsailState``, which holds the records and the lock and
calls these ``op_`` methods from ``handle``.

Must not: do I/O, sleep, know HTTP, take the lock (``handle`` holds it), or be used apart from
``LightsailState``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from o4o_operator.testing.lightsail_errors import invalid
from o4o_operator.testing.lightsail_resources import InstanceRecord

Params = dict[str, Any]


class PowerOperations:
    """The stop and start operations of ``LightsailState`` (which provides these methods)."""

    def _operation(self, region: str, zone: str, resource: str, kind: str, operation_type: str) -> Params:
        raise NotImplementedError  # LightsailState records operations

    def _instance(self, region: str, name: str) -> InstanceRecord:
        raise NotImplementedError  # LightsailState looks instances up

    _clock: Callable[[], float]

    def op_StopInstance(self, region: str, p: Params) -> Params:
        instance = self._instance(region, p["instanceName"])
        instance.stopped, instance.running = True, False
        instance.stops += 1
        return {"operations": [self._operation(region, instance.zone, instance.name, "Instance", "StopInstance")]}

    def op_StartInstance(self, region: str, p: Params) -> Params:
        instance = self._instance(region, p["instanceName"])
        if not instance.stopped:
            raise invalid(f"The instance {instance.name} is not stopped.")
        instance.stopped = False
        instance.starts += 1
        instance.started_at, instance.reads_while_pending = self._clock(), 0
        return {"operations": [self._operation(region, instance.zone, instance.name, "Instance", "StartInstance")]}
