"""The shipped image, built and run for real with podman, where no registry of base images is reachable.

Owns: the base image (a Debian 12 root made with debootstrap from the machine's Debian mirror, with
``python3``, ``python3-venv``, ``python-is-python3`` and the TLS roots this machine trusts beyond Debian's,
imported into podman as ``localhost/o4o-python-base:<recipe key>``: a corporate base image, as
``python:3.11-slim`` is a public one), building the repository's ``Dockerfile`` unchanged on it
(``--build-arg PYTHON_IMAGE=...``), and :func:`container_command`, which runs the image as the manifests run it
(UID 65532, read-only root, only ``/tmp`` writable) on the host's network. Must not change the Dockerfile's
meaning or add anything to the image: the base carries only what a registry's base would.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from o4o_operator.testing.hosts.apt_sources import DebianMirror, machine_debian_mirror
from o4o_operator.testing.hosts.system import HostWorldError, run_checked
from o4o_operator.testing.hosts.trust import machine_extra_roots

REPO = Path(__file__).resolve().parents[3]
BASE_PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates")
BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
BASE_ENVIRONMENT = {"SSL_CERT_FILE": BUNDLE, "PIP_CERT": BUNDLE, "UV_NATIVE_TLS": "1"}
"""pip and uv bring their own roots; a base image that adds roots points them at the system's."""
IMAGE = "localhost/o4o-operator:test"
RUN_USER = "65532:65532"
_RECIPE_VERSION = 1


@dataclasses.dataclass(frozen=True)
class BaseRecipe:
    mirror: DebianMirror = dataclasses.field(default_factory=machine_debian_mirror)
    suite: str = "bookworm"
    packages: tuple[str, ...] = BASE_PACKAGES
    extra_roots: tuple[str, ...] = dataclasses.field(default_factory=machine_extra_roots)

    @property
    def tag(self) -> str:
        described = json.dumps({"version": _RECIPE_VERSION, **dataclasses.asdict(self)}, sort_keys=True)
        return f"localhost/o4o-python-base:{self.suite}-{hashlib.sha256(described.encode()).hexdigest()[:12]}"


@dataclasses.dataclass(frozen=True)
class BuiltImage:
    tag: str
    size_bytes: int
    build_seconds: float
    base_built_now: bool


def podman() -> str | None:
    """podman, when it is installed and this process may run containers (root)."""
    found = shutil.which("podman")
    return found if found is not None and os.geteuid() == 0 else None


def _containers_conf() -> Path:
    """No ulimits of podman's own: containers keep this machine's (root here may not raise its limits)."""
    path = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "o4o" / "containers.conf"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "[containers]\ndefault_ulimits = []\n"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def podman_command(*args: str) -> list[str]:
    """``podman ARGS`` with this module's settings: runc when installed (crun refuses a machine whose cgroups
    are v1 with a v2 hierarchy beside them, as this one's are), and :func:`_containers_conf`."""
    runtime = ["--runtime", "runc"] if shutil.which("runc") else []
    return ["env", f"CONTAINERS_CONF={_containers_conf()}", "podman", *runtime, *args]


def _image_exists(tag: str) -> bool:
    return subprocess.run(podman_command("image", "exists", tag), check=False).returncode == 0


def ensure_base_image(recipe: BaseRecipe | None = None) -> tuple[str, bool]:
    """The base image's tag, built and imported now if podman does not hold it yet (and whether it was)."""
    recipe = recipe or BaseRecipe()
    if _image_exists(recipe.tag):
        return recipe.tag, False
    with tempfile.TemporaryDirectory(prefix="o4o-image-base-") as work:
        root = Path(work) / "root"
        run_checked(["debootstrap", "--variant=minbase", f"--include={','.join(recipe.packages)}", recipe.suite,
                     str(root), recipe.mirror.archive], timeout=1200)
        if recipe.extra_roots:
            extra = root / "usr/local/share/ca-certificates/o4o-machine-roots.crt"
            extra.write_text("".join(recipe.extra_roots))
            run_checked(["chroot", str(root), "update-ca-certificates"], timeout=120)
        shutil.rmtree(root / "var/cache/apt/archives", ignore_errors=True)
        shutil.rmtree(root / "var/lib/apt/lists", ignore_errors=True)
        changes = [f"ENV {name}={value}" for name, value in BASE_ENVIRONMENT.items()] + ['CMD ["/bin/bash"]']
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        run = podman_command("import", *(arg for change in changes for arg in ("--change", change)), "-", recipe.tag)
        imported = subprocess.run(run, stdin=tar.stdout, capture_output=True, text=True, check=False)
        if tar.stdout is not None:
            tar.stdout.close()
        if tar.wait() != 0 or imported.returncode != 0:
            raise HostWorldError(f"podman import of the base image failed: {imported.stderr[-2000:]}")
    return recipe.tag, True


def build_image(tag: str = IMAGE) -> BuiltImage:
    """The repository's Dockerfile, unchanged, on the local base image."""
    started = time.monotonic()
    base, built_now = ensure_base_image()
    # docker format: the Dockerfile's SHELL (bash with pipefail) is not part of the OCI image format
    run_checked(podman_command("build", "--format", "docker", "--network", "host", "--build-arg",
                               f"PYTHON_IMAGE={base}", "-t", tag, "-f", str(REPO / "Dockerfile"), str(REPO)),
                timeout=1800)
    size = int(run_checked(podman_command("image", "inspect", "--format", "{{.Size}}", tag)).strip())
    return BuiltImage(tag, size, time.monotonic() - started, built_now)


def container_command(name: str, image: str, environment: Mapping[str, str], read_only_paths: Sequence[Path],
                      command: Sequence[str]) -> list[str]:
    """``podman run`` as the manifests run the operator: non-root, read-only root, ``/tmp`` the only writable
    place, the host's network (the local control plane, cloud and sandbox hosts listen on loopback), the
    named environment variables passed by name (their values never in argv) and ``read_only_paths`` mounted
    where they are on this machine."""
    mounts = [arg for path in read_only_paths for arg in ("-v", f"{path}:{path}:ro")]
    names = [arg for variable in environment for arg in ("-e", variable)]
    return podman_command("run", "--rm", "--name", name, "--network", "host", "--read-only", "--user", RUN_USER,
                          *mounts, *names, "--entrypoint", command[0], image, *command[1:])


def run_in_image(image: str, *command: str) -> subprocess.CompletedProcess[str]:
    """A command in the image, as the operator runs there (UID 65532, read-only root)."""
    return subprocess.run(podman_command("run", "--rm", "--read-only", "--user", RUN_USER, "--entrypoint",
                                         command[0], image, *command[1:]),
                          capture_output=True, text=True, timeout=120, check=False)


def remove_container(name: str) -> None:
    subprocess.run(podman_command("rm", "-f", "--ignore", name), capture_output=True, check=False)
