"""The local Node.js mirror: a nodejs.org/dist-shaped tarball that installs the way nvm installs it."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from o4o_operator.testing.mirrors import NODE_VERSION, NodeMirror, tarball_name


@pytest.fixture(scope="module")
def mirror() -> Iterator[NodeMirror]:
    started = time.monotonic()
    with NodeMirror() as running:
        print(f"node mirror ready in {time.monotonic() - started:.1f}s")
        yield running


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 (our loopback mirror)
        body: bytes = response.read()
        return body


def test_tarball_matches_shasums_and_runs(mirror: NodeMirror, tmp_path: Path) -> None:
    release = f"{mirror.url}/v{NODE_VERSION}"
    shasums = fetch(f"{release}/SHASUMS256.txt").decode()
    tarball = fetch(f"{release}/{tarball_name()}")
    (tmp_path / tarball_name()).write_bytes(tarball)
    expected = {name: digest for digest, name in (line.split() for line in shasums.splitlines())}
    subprocess.run(["tar", "-xJf", str(tmp_path / tarball_name()), "-C", str(tmp_path)], check=True)
    home = tmp_path / f"node-v{NODE_VERSION}-linux-x64"
    env = {"PATH": f"{home / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "npm_config_update_notifier": "false"}
    node = subprocess.run([str(home / "bin" / "node"), "--version"], capture_output=True, text=True, env=env)
    npm = subprocess.run([str(home / "bin" / "npm"), "--version"], capture_output=True, text=True, env=env)
    npx = subprocess.run([str(home / "bin" / "npx"), "--version"], capture_output=True, text=True, env=env)
    print(f"tarball {len(tarball) / 1e6:.1f} MB, npm {npm.stdout.strip()}")

    assert expected[tarball_name()] == hashlib.sha256(tarball).hexdigest()
    assert node.stdout.strip() == f"v{NODE_VERSION}", node.stderr
    assert npm.returncode == 0 and npm.stdout.strip()[:2].isdigit(), npm.stderr
    assert npx.returncode == 0, npx.stderr
    assert os.readlink(home / "bin" / "npm") == "../lib/node_modules/npm/bin/npm-cli.js"


def test_index_lists_the_release(mirror: NodeMirror) -> None:
    index = fetch(f"{mirror.url}/index.json").decode()

    assert f'"v{NODE_VERSION}"' in index


def test_nothing_outside_the_dist_directory_is_served(mirror: NodeMirror) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        fetch(f"{mirror.url}/../wheels/")
    refused.value.close()

    assert refused.value.code == 404
