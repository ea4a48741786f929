"""plan_apps (pipeline/apps.py): what the apps stage does, from the instance's lists and root's record."""

from __future__ import annotations

import pytest

from o4o_operator.errors import PermanentError
from o4o_operator.pipeline.apps import AppChange, plan_apps

MARKET = ("forum-core", "signage", "lms-core")


def test_a_wanted_app_absent_is_installed_then_activated_and_an_inactive_one_only_activated() -> None:
    plan = plan_apps(("forum-core", "signage", "lms-core"), MARKET,
                     {"signage": "inactive", "lms-core": "active"}, ())
    assert plan.removals == ()
    assert plan.wanted == (AppChange("spec.apps[0]", "forum-core", ("install", "activate")),
                           AppChange("spec.apps[1]", "signage", ("activate",)),
                           AppChange("spec.apps[2]", "lms-core", ()))


def test_only_recorded_apps_no_longer_wanted_are_removed_as_far_as_they_exist() -> None:
    plan = plan_apps((), MARKET, {"forum-core": "active", "signage": "installed", "lms-core": "active"},
                     ("forum-core", "signage", "gone"))
    assert plan.removals == (AppChange("spec.apps (removed forum-core)", "forum-core", ("deactivate", "uninstall")),
                             AppChange("spec.apps (removed gone)", "gone", ()),
                             AppChange("spec.apps (removed signage)", "signage", ("uninstall",)))
    assert plan.wanted == ()  # lms-core was installed by other hands: left alone


def test_an_app_the_instance_does_not_list_stalls_naming_its_index_and_what_it_lists() -> None:
    with pytest.raises(PermanentError) as caught:
        plan_apps(("forum-core", "blog"), MARKET, {}, ())
    assert caught.value.reason == "UnknownApp"
    assert caught.value.message == ("spec.apps[1]: the instance lists no app named blog; "
                                    "it lists: forum-core, signage, lms-core")
    with pytest.raises(PermanentError, match="it lists: nothing"):
        plan_apps(("blog",), (), {}, ())
