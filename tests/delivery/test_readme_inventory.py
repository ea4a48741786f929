"""The README documents the inventory (issue 19): every kind of item it can list, its two states, that
teardown reads only it, the grant setting and what Retain keeps. A kind added without a word in the README
fails here."""

from __future__ import annotations

from pathlib import Path

import pytest

from o4o_operator.models_inventory import ItemKind, ItemState

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
INVENTORY = README[README.index("- **Inventory**"):README.index("- **Drift**")]
"""The README's inventory, deletion and Retain paragraphs."""


CLOUD_WORDS = {ItemKind.SERVER: "server", ItemKind.STATIC_IP: "static IP", ItemKind.KEY_PAIR: "key pair",
               ItemKind.DNS_RECORD: "DNS record"}
"""The cloud items, named in words rather than by kind."""


@pytest.mark.parametrize("kind", list(ItemKind), ids=lambda kind: kind.value)
def test_every_kind_of_item_is_documented(kind: ItemKind) -> None:
    assert CLOUD_WORDS.get(kind, f"`{kind.value}`") in INVENTORY


def test_the_states_teardown_retain_and_the_grant_are_documented() -> None:
    assert all(f"`{state.value}`" in INVENTORY for state in ItemState)
    assert "from the inventory alone" in INVENTORY and "no longer parses" in INVENTORY
    assert "**`deletionPolicy: Retain`** keeps" in INVENTORY and "`<name>-database`" in INVENTORY
    assert "`O4O_AMBIENT_GRANTS`" in README
