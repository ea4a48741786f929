"""Build or find, once and up front, every cached asset the tests and ``make dev`` use.

Owns: the list of cached test assets and building the missing ones before pytest starts its workers, two at
a time (the Go builds one after the other, beside the I/O-bound Node.js mirror and Debian image), each under
its own module's cache lock. Without it each of ``make test``'s workers would find a cold cache at once, and
build the same thing or wait on the same lock inside a test's timeout.

Must not: build anything itself (each asset's own module does), or decide what a test skips: an asset that
cannot be had here (no root for the Debian image) is reported and left to the tests that need it.

``python -m o4o_operator.testing.assets`` prints one line per asset: built now or cached, and the seconds.
"""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import sys
import time
from collections.abc import Callable

from o4o_operator.testing import fluxcelbin, mirrors, pebblebin, s3bin, shim_fork, testbin
from o4o_operator.testing.hosts import rootfs


def _go_binaries() -> str:
    """kube-apiserver, etcd and kubectl, Pebble and challtestsrv, the Versity S3 Gateway (the S3 server), then
    flux-cel: Go builds, one at a time on 2 cores."""
    return (f"{testbin.ensure_testbin()}; {pebblebin.ensure_pebble()}; {s3bin.ensure_s3_server()}; "
            f"{fluxcelbin.ensure_flux_cel()}")


def _node_dist() -> str:
    return str(mirrors.ensure_node_dist())


def _host_image() -> str:
    """The booted hosts' Debian root (needs root and debootstrap, as the tests that boot hosts do)."""
    if os.geteuid() != 0 or shutil.which("debootstrap") is None:
        return "skipped: needs root and debootstrap (the booted-host tests skip the same way)"
    image = rootfs.cached_rootfs()
    return f"{image.path} ({'built' if image.built_now else 'cached'})"


def _shim_client() -> str:
    """The sandbox shims' C client (see ``shim_fork``); without a compiler the shims stay Python scripts."""
    return str(shim_fork.client_binary() or "none: no C compiler, the sandbox shims stay Python scripts")


ASSETS: dict[str, Callable[[], str]] = {
    "go binaries": _go_binaries,
    "shim client": _shim_client,
    "node.js mirror": _node_dist,
    "debian image": _host_image,
}


def ensure_all(assets: dict[str, Callable[[], str]] = ASSETS) -> dict[str, tuple[float, str]]:
    """Each asset's seconds and what it says; the first failure is raised after every asset has finished."""
    results: dict[str, tuple[float, str]] = {}
    failures: list[BaseException] = []

    def timed(name: str, build: Callable[[], str]) -> None:
        started = time.monotonic()
        try:
            said = build()
        except BaseException as error:
            failures.append(error)
            said = f"failed: {error}"
        results[name] = (time.monotonic() - started, said)

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(assets)) as pool:
        for future in [pool.submit(timed, name, build) for name, build in assets.items()]:
            future.result()
    if failures:
        raise failures[0]
    return results


def main() -> int:
    results = ensure_all()
    for name, (seconds, said) in results.items():
        print(f"test assets: {name}: {seconds:.1f} s, {said}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

