"""The pure parts of the booted-host world: apt sources, extra TLS roots, the recipe's key, proxy rules, host keys.

No root, no network, no boot: these run everywhere.
"""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest

from o4o_operator.testing.hosts import DebianMirror, HostKey, RootfsRecipe, machine_debian_mirror
from o4o_operator.testing.hosts.egress_proxy import _filter_rules
from o4o_operator.testing.hosts.network import HostLink
from o4o_operator.testing.hosts.rootfs import PROXY_VARIABLES, ImageNetwork, _environment_lines
from o4o_operator.testing.hosts.trust import machine_extra_roots

_DEB822 = """Types: deb
# http://snapshot.example/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main

Types: deb
URIs: http://mirror.example/debian-security/
Suites: bookworm-security
Components: main
"""


def test_the_mirror_comes_from_the_machine_apt_sources_in_both_formats(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text("# deb http://commented.example/debian bookworm main\n")
    (tmp_path / "sources.list.d" / "debian.sources").write_text(_DEB822)
    (tmp_path / "sources.list.d" / "vendor.list").write_text(
        "deb [signed-by=/usr/share/keyrings/x.gpg] https://vendor.example/apt stable main\n")
    mirror = machine_debian_mirror(tmp_path)
    assert mirror == DebianMirror("http://mirror.example/debian", "http://mirror.example/debian-security")
    assert mirror.hosts == ("mirror.example",)


def test_one_line_sources_work_and_no_sources_mean_debian_default(tmp_path: Path) -> None:
    assert machine_debian_mirror(tmp_path).archive == "http://deb.debian.org/debian"
    (tmp_path / "sources.list").write_text("deb [arch=amd64] http://ftp.example/debian bookworm main\n")
    assert machine_debian_mirror(tmp_path) == DebianMirror("http://ftp.example/debian", None)


def _pem(tmp_path: Path, name: str) -> str:
    key = tmp_path / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-subj", f"/CN={name}", "-days", "1", "-out", str(tmp_path / f"{name}.crt")],
                   check=True, capture_output=True)
    return (tmp_path / f"{name}.crt").read_text()


def test_extra_roots_are_those_the_machine_trusts_beyond_debian(tmp_path: Path) -> None:
    debian = tmp_path / "debian" / "mozilla"
    debian.mkdir(parents=True)
    known, extra = _pem(tmp_path, "known-root"), _pem(tmp_path, "inspection-root")
    (debian / "Known.crt").write_text(known)
    bundle = tmp_path / "bundle.crt"
    bundle.write_text(known + extra)
    found = machine_extra_roots(bundle, tmp_path / "debian")
    assert ["".join(pem.split()) for pem in found] == ["".join(extra.split())]
    bundle.write_text(known)
    assert machine_extra_roots(bundle, tmp_path / "debian") == ()


def test_the_recipe_key_is_stable_and_changes_with_any_field() -> None:
    recipe = RootfsRecipe(mirror=DebianMirror("http://mirror.example/debian"), extra_roots=())
    assert recipe.key == dataclasses.replace(recipe).key
    assert recipe.key.startswith("bookworm-")
    changed = [dataclasses.replace(recipe, packages=(*recipe.packages, "less")),
               dataclasses.replace(recipe, network=ImageNetwork(nameserver="198.51.100.2")),
               dataclasses.replace(recipe, mirror=DebianMirror("http://other.example/debian")),
               dataclasses.replace(recipe, extra_roots=("pem",))]
    assert len({recipe.key, *(other.key for other in changed)}) == 5


def test_the_image_environment_sets_every_proxy_variable_sudo_keeps() -> None:
    lines = _environment_lines(ImageNetwork()).splitlines()
    assert [line.split("=", 1)[0] for line in lines] == list(PROXY_VARIABLES)
    assert 'HTTPS_PROXY="http://198.51.100.1:3128"' in lines


def test_the_proxy_filter_admits_exact_names_only() -> None:
    rules = _filter_rules(["deb.debian.org", "Registry.npmjs.org."])
    assert rules.splitlines() == ["^deb\\.debian\\.org$", "^registry\\.npmjs\\.org$"]
    with pytest.raises(ValueError, match="allowed_hosts"):
        _filter_rules(["evil.example/.*"])


def test_host_numbers_map_to_test_net_2_and_stay_inside_it() -> None:
    link = HostLink(10)
    assert (link.address, link.netns, link.veth) == ("198.51.100.10", "o4o-host-10", "o4ov10")
    for outside in (1, 9, 255):
        with pytest.raises(ValueError, match="host number"):
            HostLink(outside)


def test_host_key_fingerprints_match_ssh_keygen(tmp_path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "key")], check=True)
    public = (tmp_path / "key.pub").read_text()
    printed = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(tmp_path / "key.pub")],
                             capture_output=True, text=True, check=True).stdout.split()[1]
    key = HostKey.from_line(public)
    assert (key.algorithm, key.fingerprint_sha256) == ("ssh-ed25519", printed)
    assert key.public_key == " ".join(public.split()[:2])
