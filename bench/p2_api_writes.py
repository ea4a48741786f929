"""P2: kube-apiserver write requests per DeploymentInstance lifecycle, from the apiserver's own metrics.

A few instances go create -> Ready -> delete -> gone in a world of their own (no
latencies, the operator's default settings). ``apiserver_request_total`` is read from
kube-apiserver's ``/metrics`` before the first create and after the last instance is
gone; write verbs (POST, PUT, PATCH, DELETE, APPLY) are summed per resource and
divided by the number of instances.

The target (2 per stage + 2 = 20) covers writes *by the operator* to the
DeploymentInstance itself and its status subresource. The client's own create and
delete (one POST and one DELETE each, made by this benchmark) are counted and shown
apart. Events and the log ConfigMap are reported beside it, and anything else the
apiserver wrote in the window (its own leases, for instance) under "others".
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import time
import urllib.request
from typing import Any

from bench.common import (
    DI_PATH,
    WRITE_VERBS,
    InstanceWatcher,
    RequestKey,
    apiserver_requests,
    bench_world,
    request_delta,
    say,
    start_control_plane,
    verdict,
    write_result,
)
from bench.p1_concurrency import create_all
from o4o_operator.pipeline.stages import STAGE_COUNT
from o4o_operator.testing import ControlPlane

NAME = "p2-api-writes"
NAMESPACE = "bench-p2"
TARGET = 2 * STAGE_COUNT + 2
DI = "deploymentinstances"


@dataclasses.dataclass(frozen=True)
class Options:
    instances: int = 3
    subnet: int = 92
    timeout: float = 600.0


def delete_all(plane: ControlPlane, namespace: str, names: list[str]) -> None:
    """DELETE each instance once (the finalizer keeps it until the operator has torn it down)."""
    context = plane.ssl_context()

    def delete(name: str) -> None:
        url = f"{plane.server}{DI_PATH.format(namespace=namespace)}/{name}"
        request = urllib.request.Request(url, method="DELETE")  # noqa: S310 - our own apiserver
        with urllib.request.urlopen(request, context=context, timeout=60) as response:  # noqa: S310
            response.read()

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(delete, names))


def _bucket(key: RequestKey) -> str:
    if key.resource == DI:
        return f"{DI}/{key.subresource}" if key.subresource else DI
    if key.resource in ("events", "configmaps"):
        return key.resource
    return "others"


def breakdown(delta: dict[RequestKey, float], instances: int, client_writes: dict[str, float]) -> dict[str, Any]:
    """Write requests per instance, by bucket and verb; the client's own writes are taken out of the DI."""
    buckets: dict[str, dict[str, float]] = {}
    others: dict[str, float] = {}
    for key, count in delta.items():
        if key.verb not in WRITE_VERBS:
            continue
        bucket = _bucket(key)
        verbs = buckets.setdefault(bucket, {})
        verbs[key.verb] = verbs.get(key.verb, 0.0) + count
        if bucket == "others":
            label = f"{key.verb} {key.group + '/' if key.group else ''}{key.resource}"
            others[label] = others.get(label, 0.0) + count
    operator_di = {verb: count - client_writes.get(verb, 0.0) for verb, count in buckets.get(DI, {}).items()}
    per = {name: round(sum(verbs.values()) / instances, 2) for name, verbs in buckets.items()}
    operator_di_total = sum(operator_di.values()) + sum(buckets.get(f"{DI}/status", {}).values())
    return {
        "per_instance_by_resource": per,
        "verbs_by_resource": {name: {verb: round(count / instances, 2) for verb, count in verbs.items()}
                              for name, verbs in buckets.items()},
        "operator_writes_to_di_and_status_per_instance": round(operator_di_total / instances, 2),
        "operator_writes_to_di_per_instance": {verb: round(count / instances, 2)
                                               for verb, count in operator_di.items() if count},
        "client_writes_to_di_per_instance": {verb: round(count / instances, 2)
                                             for verb, count in client_writes.items()},
        "total_writes_per_instance": round(sum(per.values()), 2),
        "total_writes_per_instance_without_others": round(
            sum(count for name, count in per.items() if name != "others"), 2),
        "others_in_window": {label: count for label, count in sorted(others.items())},
    }


def run(options: Options) -> dict[str, Any]:
    plane = start_control_plane()
    try:
        world = bench_world(plane, subnet=options.subnet)
        with world:
            plane.create_namespace(NAMESPACE)
            world.create_secrets(NAMESPACE)
            names = [f"life{index}" for index in range(options.instances)]
            with InstanceWatcher(plane, NAMESPACE) as watcher:
                time.sleep(2.0)  # let the operator's start-up requests settle before the first reading
                before = apiserver_requests(plane)
                started = time.monotonic()
                create_all(plane, NAMESPACE, [world.manifest(name, NAMESPACE) for name in names])
                if not watcher.wait(lambda w: set(names) <= w.ready_at.keys(), options.timeout):
                    raise RuntimeError(f"not Ready after {options.timeout:.0f}s: "
                                       f"{sorted(set(names) - watcher.ready_at.keys())}")
                ready = time.monotonic() - started
                time.sleep(2.0)  # the Ready event and the last log ConfigMap write follow the status
                delete_all(plane, NAMESPACE, names)
                if not watcher.wait(lambda w: set(names) <= w.gone_at.keys(), options.timeout):
                    raise RuntimeError(f"not gone after {options.timeout:.0f}s: "
                                       f"{sorted(set(names) - watcher.gone_at.keys())}")
                lifecycle = time.monotonic() - started
                time.sleep(2.0)  # anything the operator still writes after the object is gone counts too
                after = apiserver_requests(plane)
    finally:
        plane.stop()
    client = {"POST": float(options.instances), "DELETE": float(options.instances)}
    figures = breakdown(request_delta(before, after), options.instances, client)
    value = figures["operator_writes_to_di_and_status_per_instance"]
    return {
        "benchmark": NAME, "instances": options.instances, "stages": STAGE_COUNT,
        "target": f"<= {TARGET} operator writes to the DeploymentInstance and its status per lifecycle",
        "value": value, "verdict": verdict(value, TARGET),
        "seconds_to_ready": round(ready, 1), "seconds_lifecycle": round(lifecycle, 1), **figures,
    }


def report(result: dict[str, Any]) -> None:
    per = result["per_instance_by_resource"]
    say(f"P2  {result['value']} operator writes to the DI + status per lifecycle (target {result['target']}: "
        f"{result['verdict']}); {result['instances']} instances, create -> Ready -> delete -> gone")
    say(f"    by verb on the DI: {result['operator_writes_to_di_per_instance']}; on status: "
        f"{result['verbs_by_resource'].get(DI + '/status', {})}; client's own: "
        f"{result['client_writes_to_di_per_instance']}")
    say(f"    per instance: {per}; total {result['total_writes_per_instance']} "
        f"({result['total_writes_per_instance_without_others']} without others: {result['others_in_window']})")


def main(options: Options) -> dict[str, Any]:
    result = run(options)
    path = write_result(NAME, result)
    report(result)
    say(f"    wrote {path}")
    return result
