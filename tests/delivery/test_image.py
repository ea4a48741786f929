"""The image, built from the Dockerfile with podman and run as the manifests run it: it reconciles a DI to Ready.

The base is a Debian 12 root of this machine's own (no registry of base images is reachable here), see
``o4o_operator.testing.image``. The operator in the container is the image's own code; the only thing the
test adds is the flag that lets it honour sandbox hosts' ``O4O_ROOT`` (as ``testing.operator_main`` does),
set on its command line, since the image leaves the testing package out. Skips without podman, root or
debootstrap.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from o4o_operator.testing import ControlPlane
from o4o_operator.testing import image as image_tools
from o4o_operator.testing.operator_process import OperatorProcess
from o4o_operator.testing.world import LocalWorld

pytestmark = pytest.mark.timeout(1800)
SANDBOX_HOOK = ("import sys; sys.modules.setdefault('kubernetes', None); from o4o_operator import cli, handlers; "
                "handlers.HONOUR_SANDBOX_ROOT = True; sys.exit(cli.main(sys.argv[1:]))")


@pytest.fixture(scope="module")
def built() -> image_tools.BuiltImage:
    if image_tools.podman() is None or shutil.which("debootstrap") is None:
        pytest.skip("the image test needs root, podman and debootstrap (make test installs them)")
    built = image_tools.build_image()
    print(f"\nimage {built.tag}: {built.size_bytes / 2**20:.0f} MiB, built in {built.build_seconds:.0f} s "
          f"(base image {'built now' if built.base_built_now else 'cached'})")
    return built


def in_image(built: image_tools.BuiltImage, *command: str) -> subprocess.CompletedProcess[str]:
    return image_tools.run_in_image(built.tag, *command)


def test_it_runs_as_65532_on_a_read_only_root_with_only_tmp_writable(built: image_tools.BuiltImage) -> None:
    assert in_image(built, "id", "-u").stdout.strip() == "65532"
    assert in_image(built, "sh", "-c", "touch /app/x").returncode != 0
    assert in_image(built, "sh", "-c", "touch /tmp/x").returncode == 0
    help_text = in_image(built, "o4o-operator", "--help")
    assert help_text.returncode == 0 and "run" in help_text.stdout, help_text
    assert in_image(built, "python", "-c", "import o4o_operator.testing").returncode != 0, "the tests' peers shipped"


@pytest.fixture
def world(control_plane: ControlPlane, built: image_tools.BuiltImage,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalWorld]:
    name = f"o4o-image-test-{os.getpid()}"
    world = LocalWorld(control_plane, namespaces=("img-*",))
    world.start(with_operator=False)
    directory = Path(tempfile.mkdtemp(prefix="o4o-image-kube-"))
    directory.chmod(0o755)  # UID 65532 reads it in the container; it holds only this test's throwaway CA
    kubeconfig = control_plane.write_inlined_kubeconfig(directory / "kubeconfig", mode=0o644)

    def launcher(environment: Mapping[str, str]) -> list[str]:
        return image_tools.container_command(name, built.tag, environment, [kubeconfig.parent],
                                             ["python", "-c", SANDBOX_HOOK])

    world.operator = OperatorProcess(kubeconfig, world.directory / "operator.log",
                                     env=world.operator_environment(), namespaces=world.namespaces,
                                     launcher=launcher)
    try:
        world.operator.start()
        yield world
    finally:
        world.stop()
        image_tools.remove_container(name)
        shutil.rmtree(kubeconfig.parent, ignore_errors=True)


def test_the_image_reconciles_an_instance_to_ready_on_the_sandbox_world(world: LocalWorld) -> None:
    namespace = f"img-{os.getpid()}"
    world.control_plane.create_namespace(namespace)
    world.create_secrets(namespace)
    world.apply(world.manifest("boxed", namespace))
    done = world.control_plane.kubectl("wait", "--for=condition=Ready", "di/boxed", "-n", namespace,
                                       "--timeout=240s", check=False, timeout=300)
    assert world.operator is not None
    assert done.returncode == 0, f"{done.stderr}\noperator log:\n{world.operator.output()[-5000:]}"
