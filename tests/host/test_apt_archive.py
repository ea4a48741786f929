"""The booted hosts' kept Debian packages (testing/hosts/apt_archive.py): plain files, no host booted."""

from __future__ import annotations

from pathlib import Path

import pytest

from o4o_operator.testing.hosts import apt_archive

NGINX = "nginx_1.22.1-9+deb12u2_amd64.deb"
EPOCH = "libssl3_3.0.17-1~deb12u2_amd64.deb"
ALL_ARCHITECTURES = "python3-certbot_2.1.0-4_all.deb"


@pytest.mark.parametrize("name", [NGINX, EPOCH, ALL_ARCHITECTURES, "git_1%3a2.39.5-0+deb12u2_amd64.deb"])
def test_package_file_names_are_recognised(name: str) -> None:
    assert apt_archive.is_package_file(name)


@pytest.mark.parametrize("name", ["lock", "partial", "nginx.deb", "../nginx_1_amd64.deb", ".nginx_1_amd64.deb",
                                  "nginx_1_amd64.deb.part", "nginx_1_amd64.deb/x", "a b_1_amd64.deb"])
def test_anything_else_is_not(name: str) -> None:
    assert not apt_archive.is_package_file(name)


def test_a_removed_hosts_downloads_are_kept_and_laid_into_the_next_hosts_archive(tmp_path: Path) -> None:
    cache, first, second = tmp_path / "cache", tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    (first / NGINX).write_bytes(b"nginx package")
    (first / "lock").write_bytes(b"")
    (first / "partial").mkdir()
    (first / "partial" / EPOCH).write_bytes(b"half")  # still downloading: not a package yet

    assert apt_archive.harvest(first, cache) == 1
    assert sorted(path.name for path in cache.iterdir()) == [NGINX]
    (second / EPOCH).write_bytes(b"already here")
    assert apt_archive.seed(cache, second) == 1
    assert (second / NGINX).read_bytes() == b"nginx package"
    assert (second / EPOCH).read_bytes() == b"already here"
    assert apt_archive.harvest(first, cache) == 0  # nothing new
    assert apt_archive.harvest(second, cache) == 1  # the one the cache lacked
    assert sorted(path.name for path in cache.iterdir()) == sorted([NGINX, EPOCH])


def test_a_cached_file_is_not_overwritten_and_a_missing_cache_seeds_nothing(tmp_path: Path) -> None:
    cache, archive = tmp_path / "cache", tmp_path / "archive"
    archive.mkdir()
    assert apt_archive.seed(cache, archive) == 0
    assert apt_archive.harvest(tmp_path / "no-such-archive", cache) == 0
    assert not cache.exists()
    cache.mkdir()
    (cache / NGINX).write_bytes(b"kept")
    (archive / NGINX).write_bytes(b"other")
    assert apt_archive.harvest(archive, cache) == 0
    assert (cache / NGINX).read_bytes() == b"kept"
