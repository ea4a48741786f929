"""``spec.database.bootstrap``: the model's defaults and refusals, and the pure bootstrap decision."""

from __future__ import annotations

import pydantic
import pytest

from o4o_operator import models_build, models_database
from o4o_operator.models_database import BootstrapMode, DatabaseSpec


def test_bootstrap_defaults_to_migrate_so_existing_instances_keep_their_behaviour() -> None:
    spec = DatabaseSpec.model_validate({})
    assert spec.bootstrap.mode is BootstrapMode.MIGRATE
    assert spec.bootstrap.command is None
    assert spec.to_body()["bootstrap"] == {"mode": "migrate"}


def test_command_mode_needs_its_command_and_plain_words() -> None:
    with pytest.raises(pydantic.ValidationError, match="mode command needs command"):
        DatabaseSpec.model_validate({"bootstrap": {"mode": "command"}})
    with pytest.raises(pydantic.ValidationError):
        DatabaseSpec.model_validate({"bootstrap": {"mode": "command", "command": ["node", "a;b"]}})
    spec = DatabaseSpec.model_validate({"bootstrap": {"mode": "command", "command": ["node", "dist/boot.js"]}})
    assert spec.bootstrap.command == ("node", "dist/boot.js")


def test_restore_is_accepted_by_the_model() -> None:
    spec = DatabaseSpec.model_validate({"bootstrap": {"mode": "restore", "restore": {}}})
    assert spec.bootstrap.mode is BootstrapMode.RESTORE


def test_the_command_word_rule_is_the_builds() -> None:
    assert models_database.COMMAND_WORD_PATTERN == models_build.COMMAND_WORD_PATTERN
