"""The fleet page in headless Debian chromium, fed by the real API server: a halted fleet, its halting member,
and a status change that arrives live (awaited with Playwright's auto-retrying ``expect``, never a sleep).

The fleet and its member DeploymentInstances are put into the control plane the way the operator leaves them:
``kubectl apply`` for the specs (members owned by the fleet), ``kubectl patch --subresource=status`` for the
statuses, which are what the operator's own planner writes for them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from dashboard_cluster import patch_status, run, running_dashboard, until
from dashboard_fleet_samples import (
    BUILD_FAILED,
    CANARY,
    FLEET,
    Member,
    fleet_manifest,
    member_manifests,
    planned_status,
    scenario,
)
from playwright.async_api import Browser, Page, async_playwright, expect
from test_dashboard_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, CHROMIUM_INSTALLED

from o4o_dashboard.cache import InstanceCache
from o4o_dashboard.fleets import FleetState
from o4o_dashboard.service import Dashboard
from o4o_operator.testing import ControlPlane

pytestmark = pytest.mark.browser


@pytest.fixture
async def page() -> AsyncIterator[Page]:
    if not CHROMIUM_INSTALLED:
        pytest.skip("Debian chromium is not installed at /usr/bin/chromium (make debian-packages)")
    async with async_playwright() as playwright:
        browser: Browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        yield page
        await browser.close()
        assert errors == []  # no script errors, CSP violations included


def patch_fleet_status(plane: ControlPlane, namespace: str, status: dict[str, Any]) -> None:
    plane.kubectl("patch", "deploymentfleet", FLEET, "-n", namespace, "--subresource=status", "--type=merge",
                  "-p", json.dumps({"status": status}))


def create_fleet(plane: ControlPlane, namespace: str, case_name: str) -> None:
    """The fleet, its four members owned by it, and the statuses the operator would have written."""
    case = scenario(case_name)
    plane.kubectl("apply", "-f", "-", input=fleet_manifest(namespace, case.spec))
    uid = plane.kubectl("get", "deploymentfleet", FLEET, "-n", namespace, "-o",
                        "jsonpath={.metadata.uid}").stdout.strip()
    plane.kubectl("apply", "-f", "-", input=member_manifests(namespace, case.members, uid))
    for name, member in case.members.items():
        patch_status(plane, namespace, name, member.status())
    patch_fleet_status(plane, namespace, case.status)


def fleet_state(cache: InstanceCache, namespace: str) -> FleetState | None:
    cached = cache.get_fleet(namespace, FLEET)
    return cached.row.state if cached is not None else None


@pytest.fixture
async def dashboard(control_plane: ControlPlane, namespace: str) -> AsyncIterator[Dashboard]:
    await run(create_fleet, control_plane, namespace, "halted")
    async with running_dashboard(None, control_plane, namespace) as running:
        await until(running.cache, lambda c: len(c) == 4 and fleet_state(c, namespace) is FleetState.HALTED)
        yield running


async def test_halted_fleet_shows_its_halting_member_and_updates_live(
        page: Page, dashboard: Dashboard, control_plane: ControlPlane, namespace: str) -> None:
    await page.goto(dashboard.url + "/")
    await page.click('.topnav a[href="/fleets"]')
    row = page.locator(f'#fleets tr[data-key="{namespace}/{FLEET}"]')
    await expect(row).to_have_attribute("data-state", "Halted")
    await expect(row.locator(".cell-updated")).to_have_text("0/4")
    await row.locator(".cell-name a").click()

    halt = page.locator("#halt")
    await expect(halt).to_be_visible()
    await expect(halt.locator("h2")).to_have_text("Rollout halted in wave canary")
    await expect(page.locator("#halting-member")).to_have_text(CANARY)
    await expect(page.locator("#halt-reason")).to_have_text("BuildFailed")
    await expect(page.locator("#halt-message")).to_have_text(BUILD_FAILED)
    await expect(page.locator("#members tbody tr[data-member]")).to_have_count(4)
    await expect(page.locator("#members tr.member-halting")).to_have_attribute("data-member", CANARY)
    await expect(page.locator('#waves tr[data-wave="canary"]')).to_have_attribute("data-state", "Halted")
    await expect(page.locator("#live-indicator")).to_have_attribute("data-state", "on")
    await page.screenshot(path=str(ARTIFACTS / "dashboard-fleet-halted.png"), full_page=True)
    await page.evaluate("window.__sameDocument = true")

    # The canary is fixed and Ready on the target; the operator's planner moves the fleet to the gate.
    gate = scenario("gate")
    await run(patch_status, control_plane, namespace, CANARY, gate.members[CANARY].status())
    await expect(page.locator(f'#members tr[data-member="{CANARY}"]')).to_have_attribute("data-updated", "true")
    await run(patch_fleet_status, control_plane, namespace, gate.status)
    await expect(page.locator("#halt")).to_have_count(0)
    await expect(page.locator("#gate")).to_contain_text("deploy.o4o.io/promote=rest")
    await expect(page.locator('#waves tr[data-wave="canary"]')).to_have_attribute("data-state", "Done")
    await expect(page.locator("#fleet-state .badge").first).to_have_text("WaitingForPromotion")

    # And halted again, on a member of the second wave: the banner comes back, naming it.
    members = {**gate.members, "shop-us": Member(pinned=gate.members[CANARY].pinned,
                                                 commit=gate.members[CANARY].pinned, state="failed")}
    halted = planned_status(gate.spec, members, promoted="rest")
    await run(patch_status, control_plane, namespace, "shop-us", members["shop-us"].status())
    await run(patch_fleet_status, control_plane, namespace, halted)
    await expect(page.locator("#halting-member")).to_have_text("shop-us")
    await expect(page.locator("#halt h2")).to_have_text("Rollout halted in wave rest")
    assert await page.evaluate("window.__sameDocument") is True  # updated in place, never reloaded
    await page.screenshot(path=str(ARTIFACTS / "dashboard-fleet.png"), full_page=True)
