"""Headless Debian chromium (through Playwright) against a dashboard fed by the real API server.

Live updates are awaited with Playwright's auto-retrying ``expect``, never with sleeps. Screenshots go to
``O4O_ARTIFACTS`` (default ``$TMPDIR/o4o-artifacts``), never into the source tree: ``make screenshot`` is the
command that refreshes ``docs/dashboard.png``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from dashboard_cluster import apply_spec, create_states, patch_status, phases, run, running_dashboard, until
from dashboard_samples import DEMO, XSS, spec, status_building, status_failed
from playwright.async_api import Browser, Locator, Page, async_playwright, expect

from o4o_dashboard.service import Dashboard
from o4o_operator.testing import ControlPlane

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
CHROMIUM_INSTALLED = CHROMIUM.exists()
REPO = Path(__file__).resolve().parents[2]
# Playwright makes the directory when it writes the first screenshot.
ARTIFACTS = Path(os.environ.get("O4O_ARTIFACTS") or Path(tempfile.gettempdir()) / "o4o-artifacts")
EXPECT_MS = 15_000
expect.set_options(timeout=EXPECT_MS)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM_INSTALLED:
        pytest.skip("Debian chromium is not installed at /usr/bin/chromium (make debian-packages)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1280, "height": 860})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    await context.close()
    assert errors == []  # no script errors, CSP violations included


@pytest.fixture
async def dashboard(control_plane: ControlPlane, namespace: str) -> AsyncIterator[Dashboard]:
    await run(create_states, control_plane, namespace)
    async with running_dashboard(None, control_plane, namespace) as running:
        await until(running.cache, lambda c: len(c) == 5 and phases(c)["failed"] == "Failed")
        yield running


def stage(page: Page, name: str) -> Locator:
    return page.locator(f'#stages li[data-stage="{name}"]')


async def test_list_updates_live_without_a_reload(page: Page, dashboard: Dashboard,
                                                  control_plane: ControlPlane, namespace: str) -> None:
    await page.goto(dashboard.url + "/")
    await expect(page.locator("#instances tbody tr[data-key]")).to_have_count(5)
    await expect(page.locator("#live-indicator")).to_have_attribute("data-state", "on")
    await page.evaluate("window.__sameDocument = true")

    await run(patch_status, control_plane, namespace, "building", status_failed("npm ERR! build failed"))
    building = page.locator(f'#instances tr[data-key="{namespace}/building"]')
    await expect(building.locator(".cell-phase .badge").first).to_have_text("Failed")
    await expect(page.locator('[data-stat="failed"] .stat-value')).to_have_text("2")

    await run(apply_spec, control_plane, namespace, "added", spec("added.example.com"))
    await expect(page.locator("#instances tbody tr[data-key]")).to_have_count(6)
    await run(control_plane.kubectl, "delete", "deploymentinstance", "pending", "-n", namespace)
    await expect(page.locator(f'#instances tr[data-key="{namespace}/pending"]')).to_have_count(0)
    assert await page.evaluate("window.__sameDocument") is True  # updated in place, never reloaded

    await page.screenshot(path=str(ARTIFACTS / "dashboard-live.png"), full_page=True)


async def test_detail_shows_stages_and_log_tail_live(page: Page, dashboard: Dashboard,
                                                     control_plane: ControlPlane, namespace: str) -> None:
    await page.goto(f"{dashboard.url}/instances/{namespace}/building")
    await expect(page.locator("#stages li.stage")).to_have_count(10)
    await expect(stage(page, "build-site")).to_have_attribute("data-state", "Running")
    await expect(page.locator("#log-tail")).to_contain_text("$ pnpm build")
    await expect(page.locator("#live-indicator")).to_have_attribute("data-state", "on")

    status = status_building("Running pnpm build:api")
    status["stages"][5].update(state="Succeeded", finishedAt="2025-03-01T11:04:00Z")
    status["stages"][6].update(state="Running", attempts=1, startedAt="2025-03-01T11:04:01Z")
    status["logTail"] = [*status["logTail"], "site built in 4m", "$ pnpm --filter api build"]
    await run(patch_status, control_plane, namespace, "building", status)
    await expect(stage(page, "build-site")).to_have_attribute("data-state", "Succeeded")
    await expect(stage(page, "build-api")).to_have_attribute("data-state", "Running")
    await expect(page.locator("#log-tail")).to_contain_text("$ pnpm --filter api build")
    await page.screenshot(path=str(ARTIFACTS / "dashboard-detail.png"), full_page=True)


async def test_xss_payload_stays_inert(page: Page, dashboard: Dashboard, control_plane: ControlPlane,
                                       namespace: str) -> None:
    await run(apply_spec, control_plane, namespace, "hostile", spec("hostile.example.com", description=XSS))
    await run(patch_status, control_plane, namespace, "hostile", status_failed(message=XSS))
    await until(dashboard.cache, lambda c: phases(c).get("hostile") == "Failed")

    await page.goto(f"{dashboard.url}/instances/{namespace}/hostile")
    await expect(page.locator("#description")).to_have_text(XSS)
    await expect(page.locator("#log-tail")).to_contain_text(f"error: {XSS}")
    await expect(page.locator("#live-indicator")).to_have_attribute("data-state", "on")
    # A live update swaps in a fresh fragment: it must stay inert too.
    await run(patch_status, control_plane, namespace, "hostile", {"logTail": [f"</pre>{XSS}"]})
    await expect(page.locator("#log-tail")).to_have_text(f"</pre>{XSS}\n")
    assert await page.locator("#live-region img").count() == 0
    assert await page.evaluate("typeof window.__xss") == "undefined"

    await page.goto(f"{dashboard.url}/?q=hostile")
    await expect(page.locator("#instances tbody tr[data-key]")).to_have_count(1)
    assert await page.evaluate("typeof window.__xss") == "undefined"


async def test_pages_work_without_javascript(browser: Browser, dashboard: Dashboard, namespace: str) -> None:
    context = await browser.new_context(java_script_enabled=False)
    page = await context.new_page()
    try:
        await page.goto(dashboard.url + "/")
        await expect(page.locator("#instances tbody tr[data-key]")).to_have_count(5)
        await page.select_option('select[name="phase"]', "Ready")
        await page.select_option('select[name="sort"]', "domain")
        await page.click('button[type="submit"]')
        await expect(page).to_have_url(f"{dashboard.url}/?phase=Ready&namespace=&q=&sort=domain&dir=asc")
        keys = await page.locator("#instances tbody tr[data-key]").evaluate_all(
            "rows => rows.map(row => row.dataset.key)")
        assert keys == [f"{namespace}/paused", f"{namespace}/ready"]  # quiet.example.com < shop.example.com
        await page.click('th a:text("IP")')
        await expect(page.locator('th[aria-sort="ascending"]')).to_have_text("IP")
        await page.click(f'a[href="/instances/{namespace}/ready"]')
        await expect(page.locator("#stages li.stage")).to_have_count(10)
    finally:
        await context.close()


async def test_phone_layout_has_no_horizontal_scrolling(browser: Browser, dashboard: Dashboard,
                                                        namespace: str) -> None:
    context = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                        has_touch=True, device_scale_factor=2)
    page = await context.new_page()
    try:
        for path in ("/", f"/instances/{namespace}/failed"):
            await page.goto(dashboard.url + path)
            await expect(page.locator("main")).to_be_visible()
            overflow = await page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 0, path
        await page.goto(dashboard.url + "/")
        await expect(page.locator("#instances thead")).not_to_be_in_viewport()
        await page.screenshot(path=str(ARTIFACTS / "dashboard-phone.png"), full_page=True)
    finally:
        await context.close()


DEMO_NAMESPACE = "o4o-demo"


async def test_readme_screenshot(page: Page, control_plane: ControlPlane) -> None:
    """A realistic fleet in a fixed namespace, captured as dashboard.png (make screenshot copies it to docs/)."""
    await run(control_plane.kubectl, "create", "namespace", DEMO_NAMESPACE, check=False)
    await run(create_states, control_plane, DEMO_NAMESPACE, tuple(DEMO), DEMO)
    async with running_dashboard(None, control_plane, DEMO_NAMESPACE) as dashboard:
        await until(dashboard.cache, lambda c: len(c) == len(DEMO))
        await page.goto(dashboard.url + "/")
        await expect(page.locator("#instances tbody tr[data-key]")).to_have_count(len(DEMO))
        await expect(page.locator("#live-indicator")).to_have_attribute("data-state", "on")
        await page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)


def test_artifacts_are_written_outside_the_source_tree() -> None:
    assert not ARTIFACTS.resolve().is_relative_to(REPO)
