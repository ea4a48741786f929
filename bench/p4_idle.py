"""P4: the operator's RSS and CPU with 1000 Ready instances, idle.

The pipeline is not run 1000 times. Instead 1000 DeploymentInstances on existing
hosts (loopback addresses nobody connects to) are created, and each gets the status
the worker itself would have written after all nine stages and a drift check, built
with the pipeline's own functions: the facts come from the real
``InstanceContext.observe_facts`` (Secret resourceVersions read from the apiserver), the
inputs hashes from ``current_inputs``, the stage records from ``with_stage_started`` /
``with_stage_succeeded``, and the conditions from ``with_summary`` for what ``decide``
answers (``Settle``). ``lastCheckTime`` is now and ``O4O_DRIFT_INTERVAL_SECONDS`` is a
day, so no drift check falls in the window.

Then the operator starts, as it ships (``python -m o4o_operator``, see :func:`shipped_cli`). Once every
worker has made its first pass (checked on its own metrics: 1000 reconciles, no stage run) and its CPU
has gone quiet, RSS
(``/proc/<pid>/status`` VmRSS) and CPU time (``/proc/<pid>/stat`` utime + stime) are
sampled over the idle window. The operator is started twice: the first start takes the
instances over (Kopf adds its finalizer and annotations to each, a one-off), and the
second, a restart on instances it already manages, is the steady state measured. The
restart's cost (time, CPU, apiserver writes) is reported beside it. Where the memory goes, scale by scale:
``python -m bench.p4_memory`` (bench/p4_memory.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.common import (
    DI_PATH,
    ProcessSampler,
    apiserver_requests,
    cpu_seconds,
    request_delta,
    rss_bytes,
    say,
    start_control_plane,
    verdict,
    write_result,
)
from o4o_operator.kubeapi import Credentials, KubeApi, SecretData
from o4o_operator.models import (
    LOG_TAIL_LINES,
    CertificateStatus,
    DeploymentInstanceSpec,
    DeploymentInstanceStatus,
    ServerStatus,
    SourceStatus,
)
from o4o_operator.pipeline.decisions import Settle, current_inputs, decide, format_time
from o4o_operator.pipeline.stages import STAGES
from o4o_operator.pipeline.transitions import (
    with_log_lines,
    with_stage_started,
    with_stage_succeeded,
    with_summary,
)
from o4o_operator.redaction import Redactor
from o4o_operator.runner.generated_secret import generated_values
from o4o_operator.runner.instance import InstanceContext
from o4o_operator.runner.log import InstanceLog
from o4o_operator.runner.runtime import Runtime
from o4o_operator.runner.settings import OperatorSettings
from o4o_operator.testing import ControlPlane
from o4o_operator.testing.operator_process import OperatorProcess

NAME = "p4-idle"
NAMESPACE = "bench-p4"
RSS_TARGET_MB = 150.0
CPU_TARGET_PERCENT = 1.0
DRIFT_INTERVAL_SECONDS = 86400
COMMIT = "0123456789abcdef0123456789abcdef01234567"
FINGERPRINT = "SHA256:benchmarkbenchmarkbenchmarkbenchmarkbenchma"
MERGE_PATCH = "application/merge-patch+json"


@dataclasses.dataclass(frozen=True)
class Options:
    instances: int = 1000
    idle_seconds: float = 120.0
    settle_timeout: float = 600.0
    log_lines: int = LOG_TAIL_LINES
    """Lines in each status's ``logTail``: a full pipeline run leaves it full (100 lines)."""
    operator_env: tuple[tuple[str, str], ...] = ()
    """Extra environment for the operator (e.g. allocator settings while investigating)."""


def manifest(index: int) -> dict[str, Any]:
    return {
        "apiVersion": "deploy.o4o.io/v1alpha1", "kind": "DeploymentInstance",
        "metadata": {"name": f"idle-{index:04d}", "namespace": NAMESPACE},
        "spec": {
            "domain": f"idle{index:04d}.example.com", "description": f"Idle instance {index}",
            "apps": ["forum-core"],
            "provider": {"existing": {"host": f"127.94.{index // 250}.{index % 250 + 1}", "port": 22}},
            "ssh": {"user": "deploy", "privateKeySecretRef": {"name": "ssh-key", "key": "ssh-privatekey"},
                    "hostKeyFingerprint": FINGERPRINT},
            "source": {"repository": "https://example.invalid/o4o-platform.git", "revision": "main"},
            "tls": {"email": "ops@example.com"}, "dns": {"provider": "none"}, "env": [{"name": "app-env"}],
        },
    }


SECRETS = [
    {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ssh-key", "namespace": NAMESPACE},
     "stringData": {"ssh-privatekey": "not used: nothing connects"}},
    {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "app-env", "namespace": NAMESPACE},
     "stringData": {"DATABASE_URL": "postgres://o4o@localhost/o4o", "JWT_SECRET": "bench"}},
]


class _CachedSecrets:
    """The KubeApi's ``read_secret``, read once per Secret (1000 instances share two Secrets)."""

    def __init__(self, kube: KubeApi) -> None:
        self._kube = kube
        self._cache: dict[tuple[str, str], SecretData] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._kube, name)  # the rest (creating the operator-owned Secret) as KubeApi does it

    async def read_secret(self, namespace: str, name: str, field: str) -> SecretData:
        if (namespace, name) not in self._cache:
            self._cache[(namespace, name)] = await self._kube.read_secret(namespace, name, field)
        return self._cache[(namespace, name)]


LOG_SAMPLES = (
    "[runtime] ==> Installing ca-certificates curl gnupg git openssl nginx certbot",
    "[runtime] Setting up nginx ...",
    "[runtime] ::o4o::result node=v22.11.0",
    "[source] ==> Fetching main from https://example.invalid/o4o-platform.git",
    "[build-site] > vite build --outDir dist",
    "[build-api] Done in 41.2s",
    "[configure] nginx: configuration file /etc/nginx/nginx.conf test is successful",
    "[configure] [PM2] Applying action startOrReload on app [o4o-idle-api](ids: [ 0 ])",
    "[tls] Successfully received certificate.",
    "[apps] ==> Installing app forum-core",
)


def log_lines(count: int, now: datetime.datetime) -> list[str]:
    """Lines shaped like a pipeline run's (stamp, stage, script output)."""
    stamp = now.strftime("%H:%M:%S")
    return [f"{stamp} {LOG_SAMPLES[index % len(LOG_SAMPLES)]} (line {index})" for index in range(count)]


async def ready_status(runtime: Runtime, body: dict[str, Any], now: datetime.datetime,
                       lines: int = LOG_TAIL_LINES) -> dict[str, Any]:
    """The status the worker writes once all stages succeeded and the first drift check passed."""
    spec = DeploymentInstanceSpec.model_validate(body["spec"])
    generation = int(body["metadata"].get("generation", 1))
    host = spec.provider.existing.host if spec.provider.existing else ""
    status = DeploymentInstanceStatus(
        server=ServerStatus(name=host, ip_address=host, host_key_fingerprint=FINGERPRINT),
        source=SourceStatus(revision=spec.source.revision, commit=COMMIT),
        certificate=CertificateStatus(not_after=format_time(now + datetime.timedelta(days=80))),
        installed_apps=spec.apps, last_check_time=format_time(now))
    status = with_log_lines(status, log_lines(lines, now))

    context = InstanceContext(runtime, body, spec, status, InstanceLog(Redactor()))
    await generated_values(context)  # as the worker does before it observes: <name>-database exists
    facts = await context.observe_facts(status)  # exactly what the worker observes
    spec_body = spec.to_body()
    hashes = current_inputs(spec_body, facts)
    for stage in STAGES:
        status = with_stage_started(status, stage, hashes[stage.name.value], generation, now,
                                    secrets_version=facts.secrets_version)
        status = with_stage_succeeded(status, stage, f"{stage.title}: done (benchmark)", now)
    interval = datetime.timedelta(seconds=runtime.settings.drift_interval_seconds)
    decision = decide(spec, spec_body, status, facts, body["metadata"].get("annotations") or {}, now, interval)
    if not isinstance(decision, Settle):
        raise RuntimeError(f"the built status would not settle: {decision}")
    return with_summary(status, decision, hashes, generation, now).to_body()


def _credentials(plane: ControlPlane) -> Credentials:
    assert plane.pki is not None
    return Credentials(server=plane.server, ca_path=str(plane.pki.ca_cert),
                       certificate_path=str(plane.pki.admin_cert), private_key_path=str(plane.pki.admin_key))


async def load(plane: ControlPlane, count: int, lines: int = LOG_TAIL_LINES, *, start: int = 0) -> float:
    """Create the Secrets and ``count`` Ready instances (16 requests at a time); returns seconds taken.
    ``start`` > 0 adds instances ``start`` .. ``count - 1`` to those an earlier call made (Secrets included)."""
    started = time.perf_counter()
    kube = KubeApi(_credentials(plane))
    settings = OperatorSettings(drift_interval_seconds=DRIFT_INTERVAL_SECONDS)
    runtime = Runtime(settings=settings, kube=_CachedSecrets(kube), connector=None,  # type: ignore[arg-type]
                      pipelines=asyncio.Semaphore(settings.max_pipelines))
    collection = DI_PATH.format(namespace=NAMESPACE)
    semaphore = asyncio.Semaphore(16)
    try:
        for secret in SECRETS if start == 0 else ():
            await kube.request("POST", f"/api/v1/namespaces/{NAMESPACE}/secrets", body=secret)

        async def one(index: int) -> None:
            async with semaphore:
                created = await kube.request("POST", collection, body=manifest(index))
                status = await ready_status(runtime, created, datetime.datetime.now(datetime.UTC), lines)
                await kube.request("PATCH", f"{collection}/{created['metadata']['name']}/status",
                                   body={"status": status}, content_type=MERGE_PATCH)

        await asyncio.gather(*(one(index) for index in range(start, count)))
    finally:
        await kube.close()
    return time.perf_counter() - started


_METRIC = re.compile(r'^(o4o_reconcile_total|o4o_stage_duration_seconds_count|o4o_instances)(\{[^}]*\})?\s+(\S+)$')


def operator_counts(metrics_text: str) -> dict[str, float]:
    """Reconciles by result, stage attempts and instances by phase, from the operator's metrics."""
    counts: dict[str, float] = {}
    for line in metrics_text.splitlines():
        match = _METRIC.match(line)
        if match:
            name, labels, value = match.groups()
            key = name + (labels or "")
            if name == "o4o_stage_duration_seconds_count":
                key = "stage_attempts"
            counts[key] = counts.get(key, 0.0) + float(value)
    return counts


def shipped_cli(_env: Mapping[str, str]) -> list[str]:
    """``python -m o4o_operator``: the operator as it ships. The test CLI (``testing.operator_main``, the default)
    differs only in honouring sandbox hosts' root and a test clock, neither used here, and in importing the test
    peers (``o4o_operator.testing``: botocore for the local Lightsail among them), 5.5 MiB no deployment has."""
    return [sys.executable, "-m", "o4o_operator"]


def wait_settled(operator: OperatorProcess, count: int, timeout: float) -> dict[str, Any]:
    """Until every worker made its first pass, then until the operator's CPU is quiet (< 2% over 5 s)."""
    assert operator.process is not None
    pid = operator.process.pid
    started = time.monotonic()
    deadline = started + timeout
    counts: dict[str, float] = {}
    while time.monotonic() < deadline:
        counts = operator_counts(operator.metrics())
        if counts.get('o4o_reconcile_total{result="success"}', 0) >= count:
            break
        time.sleep(2.0)  # polling the operator's own metrics, bounded by the deadline
    else:
        raise RuntimeError(f"only {counts} after {timeout:.0f}s:\n{operator.output()[-3000:]}")
    passes = time.monotonic() - started
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        time.sleep(5.0)
        if (cpu_seconds(pid) - before) / 5.0 < 0.02:
            break
    return {"first_passes_seconds": round(passes, 1), "quiet_after_seconds": round(time.monotonic() - started, 1),
            "operator_counts": operator_counts(operator.metrics())}


def run(options: Options) -> dict[str, Any]:
    plane = start_control_plane()
    directory = Path(tempfile.mkdtemp(prefix="o4o-bench-p4-"))
    try:
        plane.create_namespace(NAMESPACE)
        say(f"P4: creating {options.instances} Ready instances (status built with the pipeline's functions) ...")
        load_seconds = asyncio.run(load(plane, options.instances, options.log_lines))
        env = {"O4O_DRIFT_INTERVAL_SECONDS": str(DRIFT_INTERVAL_SECONDS), **dict(options.operator_env)}
        say(f"P4:   loaded in {load_seconds:.1f}s; first start: the operator takes them over (finalizer, "
            "Kopf's annotations) ...")
        with OperatorProcess(plane.kubeconfig, directory / "operator-first.log", env=env,
                             launcher=shipped_cli) as operator:
            first_start = wait_settled(operator, options.instances, options.settle_timeout)
        say(f"P4:   taken over in {first_start['quiet_after_seconds']}s; restarting it: an operator (re)started "
            "on instances it already manages is the steady state measured ...")
        before = apiserver_requests(plane)
        with OperatorProcess(plane.kubeconfig, directory / "operator.log", env=env, launcher=shipped_cli) as operator:
            assert operator.process is not None
            pid = operator.process.pid
            cpu_start = cpu_seconds(pid)
            settled = wait_settled(operator, options.instances, options.settle_timeout)
            startup_cpu = cpu_seconds(pid) - cpu_start
            settle_writes = request_delta(before, apiserver_requests(plane))
            rss_settled = rss_bytes(pid)
            say(f"P4:   settled ({settled['quiet_after_seconds']}s, {startup_cpu:.1f}s CPU); idle for "
                f"{options.idle_seconds:.0f}s ...")
            with ProcessSampler(pid) as sampler:
                time.sleep(options.idle_seconds)
            idle_counts = operator_counts(operator.metrics())
    finally:
        plane.stop()
        log = directory / "operator.log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        shutil.rmtree(directory, ignore_errors=True)
    idle = sampler.summary()
    rss_mb = idle["rss_mib_max"] * 1024 * 1024 / 1e6
    cpu_percent = idle["cpu_percent_of_one_core"]
    writes = {f"{k.verb} {k.resource}{'/' + k.subresource if k.subresource else ''}": v
              for k, v in sorted(settle_writes.items(), key=lambda item: -item[1])
              if k.verb in ("POST", "PUT", "PATCH", "DELETE", "APPLY")}
    return {
        "benchmark": NAME, "instances": options.instances, "idle_seconds": options.idle_seconds,
        "target": f"RSS <= {RSS_TARGET_MB:g} MB; CPU <= {CPU_TARGET_PERCENT:g}% of one core",
        "rss_mb": round(rss_mb, 1), "cpu_percent_of_one_core": cpu_percent,
        "verdict": {"rss": verdict(rss_mb, RSS_TARGET_MB), "cpu": verdict(cpu_percent, CPU_TARGET_PERCENT)},
        "idle": idle, "rss_mib_after_settling": round(rss_settled / 1024 / 1024, 1),
        "load_seconds": round(load_seconds, 1), "startup": {**settled, "cpu_seconds": round(startup_cpu, 1),
                                                             "apiserver_writes": writes},
        "operator_counts_after_idle": idle_counts,
        "first_start": {key: value for key, value in first_start.items() if key != "operator_counts"},
        "settings": {"O4O_DRIFT_INTERVAL_SECONDS": DRIFT_INTERVAL_SECONDS, "provider": "existing",
                     "operator": "--all-namespaces, defaults otherwise", "log_tail_lines": options.log_lines,
                     "operator_env": dict(options.operator_env)},
        "operator_log_tail": tail.splitlines()[-5:],
    }


def report(result: dict[str, Any]) -> None:
    idle = result["idle"]
    say(f"P4  {result['instances']} Ready instances, idle {idle['seconds']}s: RSS {result['rss_mb']} MB (max; "
        f"{idle['rss_mib_max']} MiB), CPU {result['cpu_percent_of_one_core']}% of one core "
        f"(target {result['target']}: RSS {result['verdict']['rss']}, CPU {result['verdict']['cpu']})")
    startup = result["startup"]
    say(f"    restart: every worker's first pass in {startup['first_passes_seconds']}s, quiet after "
        f"{startup['quiet_after_seconds']}s, {startup['cpu_seconds']}s CPU; RSS then "
        f"{result['rss_mib_after_settling']} MiB; apiserver writes: {json.dumps(startup['apiserver_writes'])}")
    say(f"    operator metrics after the idle window: {result['operator_counts_after_idle']}")


def main(options: Options) -> dict[str, Any]:
    result = run(options)
    path = write_result(NAME, result)
    report(result)
    say(f"    wrote {path}")
    return result
