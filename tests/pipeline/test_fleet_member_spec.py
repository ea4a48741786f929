"""A member's DeploymentInstance spec: the template merged with its domain and overrides (models_fleet.member_spec).

No processes: the merge is pure. Members that share one existing host need an API port each (the host's
127.0.0.1:<apiPort> is one listener per instance), so ``overrides.apiPort`` is a member's own.
"""

from __future__ import annotations

from typing import Any

from o4o_operator.models_fleet import DeploymentFleetSpec, member_spec

COMMIT = "c" * 40
TEMPLATE: dict[str, Any] = {"provider": {"existing": {"host": "198.51.100.20"}}, "apiPort": 3002,
                            "apps": ["forum-core"], "source": {"revision": "main"}}


def _spec(*members: dict[str, Any]) -> DeploymentFleetSpec:
    return DeploymentFleetSpec.model_validate({"template": TEMPLATE, "members": list(members)})


def test_a_member_without_overrides_is_the_template_with_its_domain_pinned_to_the_commit() -> None:
    spec = _spec({"name": "a", "domain": "a.example.com"})
    made = member_spec(spec.template, spec.members[0], COMMIT)
    assert made == {**TEMPLATE, "domain": "a.example.com", "source": {"revision": COMMIT}}
    assert TEMPLATE["source"] == {"revision": "main"}  # the template itself is left as it was


def test_members_on_one_existing_host_each_listen_on_their_own_api_port() -> None:
    spec = _spec({"name": "a", "domain": "a.example.com", "overrides": {"apiPort": 3011}},
                 {"name": "b", "domain": "b.example.com", "overrides": {"apiPort": 3012}},
                 {"name": "c", "domain": "c.example.com"})
    ports = [member_spec(spec.template, member, COMMIT)["apiPort"] for member in spec.members]
    assert ports == [3011, 3012, 3002]


def test_the_other_overrides_replace_the_templates() -> None:
    spec = _spec({"name": "a", "domain": "a.example.com",
                  "overrides": {"apps": [], "env": [{"name": "a-env"}]}})
    made = member_spec(spec.template, spec.members[0], COMMIT)
    assert made["apps"] == [] and made["env"] == [{"name": "a-env"}] and made["apiPort"] == 3002
