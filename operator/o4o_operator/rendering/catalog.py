"""The app catalog: which optional O4O apps exist and how to install or remove them.

Owns: :class:`AppDefinition` and the loading and validation of
``templates/apps/*.yaml``. Each step is an argv list (never a shell string),
run in the live release directory as the app user. Reads only those files.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import yaml

_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


@dataclasses.dataclass(frozen=True)
class AppStep:
    name: str
    run: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class AppDefinition:
    name: str
    description: str
    install: tuple[AppStep, ...]
    remove: tuple[AppStep, ...]
    requires: tuple[str, ...] = ()
    """Apps that must be wanted too (dropshipping sells through commerce)."""


class CatalogError(ValueError):
    """A catalog file is malformed; a bug in the repository, not in a spec."""


def _steps(source: Path, raw: Any, key: str) -> tuple[AppStep, ...]:
    items = raw.get(key, [])
    if not isinstance(items, list):
        raise CatalogError(f"{source.name}: {key} must be a list")
    steps = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise CatalogError(f"{source.name}: every {key} step needs a name")
        run = item.get("run")
        if not isinstance(run, list) or not run or not all(isinstance(arg, str) for arg in run):
            raise CatalogError(f"{source.name}: step {item['name']!r} needs run: a non-empty list of strings")
        steps.append(AppStep(item["name"], tuple(run)))
    return tuple(steps)


def parse_app(source: Path, text: str) -> AppDefinition:
    raw = yaml.safe_load(text)
    if not isinstance(raw, dict):
        raise CatalogError(f"{source.name}: expected a mapping")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name) or name != source.stem:
        raise CatalogError(f"{source.name}: name must be a DNS label equal to the file name")
    description = raw.get("description")
    if not isinstance(description, str) or not description.strip():
        raise CatalogError(f"{source.name}: description is required")
    requires = raw.get("requires", [])
    if not isinstance(requires, list) or not all(isinstance(r, str) and _NAME.match(r) for r in requires):
        raise CatalogError(f"{source.name}: requires must be a list of app names")
    return AppDefinition(name, description.strip(), _steps(source, raw, "install"),
                         _steps(source, raw, "remove"), tuple(requires))


def load_catalog(apps_dir: Path) -> dict[str, AppDefinition]:
    """Every ``<name>.yaml`` in the directory, by name, in name order."""
    catalog: dict[str, AppDefinition] = {}
    for path in sorted(apps_dir.glob("*.yaml")):
        app = parse_app(path, path.read_text(encoding="utf-8"))
        catalog[app.name] = app
    return catalog
