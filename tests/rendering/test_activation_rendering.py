"""Activation as rendered: migrations before the switch, the health body, uploads outside the releases.

The rendered scripts are read, not run (the sandbox tests in tests/host run them). The health body is the
operator's to judge (tests/pipeline/test_health_rule.py): no host script reads it.
"""

from __future__ import annotations

import dataclasses
import re

import pytest

from o4o_operator.errors import InvalidSpecError
from o4o_operator.models import BuildSpec
from o4o_operator.rendering import HostContext, render_nginx_site, render_script
from o4o_operator.rendering.build_context import migrate_script
from o4o_operator.rendering.host_context import build_fields

COMMIT = "0123456789abcdef0123456789abcdef01234567"
CONTEXT = HostContext(domain="shop.example.com", instance_name="shop", namespace="team-a",
                      repository="https://github.com/o4o/platform.git", revision="main",
                      tls_email="ops@example.com", commit=COMMIT)
ACTIVATING = ("configure", "activate-release")


def _body(script: str) -> str:
    """The script's top level, after the function definitions: what actually runs, in order."""
    return script[script.index('install -d -m 0700 "$ACTIVATIONS"'):]


@pytest.mark.parametrize("name", ACTIVATING)
def test_the_migration_and_the_uploads_link_come_before_current_switches(name: str) -> None:
    body = _body(render_script(name, CONTEXT))
    uploads = body.index("\nlink_uploads\n")
    migrate = body.index("\nmigrate_release\n")
    switch = body.index('o4o_relink_as_app "$TARGET" "$CURRENT"')
    reload_ = body.index("\nreload_app\n")
    assert uploads < migrate < switch < reload_


@pytest.mark.parametrize("name", ACTIVATING)
def test_the_migration_runs_as_the_app_user_in_the_new_release_with_nodes_env_file_reader(name: str) -> None:
    script = render_script(name, CONTEXT)
    assert "\nMIGRATE_COMMAND=(node dist/migrate.js)\n" in script
    assert f"\nMIGRATE_ENV_FILE=\"$R\"{CONTEXT.env_path}\n" in script
    assert "\nMIGRATED_MARKER=\"$ACTIVATIONS/$COMMIT.migrated\"\n" in script
    run = re.search(r'if as_app env NODE_ENV=production node --env-file="\$MIGRATE_ENV_FILE" -e "\$O4O_WITH_ENV" -- '
                    r'\\\n\s+"\$BASE_DIR/\$TARGET/\$API_DIR" "\$\{MIGRATE_COMMAND\[@\]\}" '
                    r'>> "\$ACTIVATION_LOG" 2>&1', script)
    assert run, "the migration must run as the app user, in the new release, into the activation log"
    # The .env is never read by a shell: no source, no dot, no eval of it.
    for reading in ('. "$MIGRATE_ENV_FILE"', 'source "$MIGRATE_ENV_FILE"', "eval", 'cat "$MIGRATE_ENV_FILE"'):
        assert reading not in script
    start = script.index("migration failed\\n")
    failed = script[start:script.index("\n", script.index("o4o_transient MigrationFailed", start))]
    assert "current stays on $previous, which keeps serving" in failed and "nothing is served until" in failed
    assert "${ACTIVATION_LOG#" in failed and "failed${failed_migration:+: $failed_migration}" in failed
    # Pruning a release forgets its migration marker with its log.
    assert '"$ACTIVATIONS/$name.migrated"' in script


def test_a_migrated_release_is_skipped_by_its_markers_content() -> None:
    script = render_script("configure", CONTEXT)
    start = script.index("migrate_release() {")
    function = script[start:script.index("\n}\n", start)]
    skip = function.index('if [ "$(cat "$MIGRATED_MARKER" 2>/dev/null || true)" = "$migration" ]; then')
    run = function.index("as_app env NODE_ENV=production node")
    mark = function.index('printf \'%s\\n\' "$migration" > "$MIGRATED_MARKER"')
    assert skip < run < mark
    # The marker is written only on success (inside the `if` of the run, before its `else`).
    assert mark < function.index("  else\n")


def test_a_custom_migrate_command_is_quoted_word_by_word() -> None:
    context = dataclasses.replace(CONTEXT, api_migrate_command=("pnpm", "run", "migration:run"))
    script = render_script("configure", context)
    assert "\nMIGRATE_COMMAND=(pnpm run migration:run)\n" in script
    assert "MIGRATE_SCRIPT=" not in render_script("build-api", context)


@pytest.mark.parametrize(("command", "script"), [
    (("node", "dist/migrate.js"), "dist/migrate.js"),
    (("node", "--enable-source-maps", "dist/migrate.js", "--all"), "dist/migrate.js"),
    (("/usr/local/bin/node", "scripts/up.mjs"), "scripts/up.mjs"),
    (("pnpm", "run", "migration:run"), None),
    (("node",), None),
    (("node", "/abs/migrate.js"), None),
])
def test_the_migrate_script_the_build_must_leave(command: tuple[str, ...], script: str | None) -> None:
    assert migrate_script(command) == script


def test_build_api_keeps_dist_database_across_the_bundle_step_and_checks_the_migrate_script() -> None:
    script = render_script("build-api", CONTEXT)
    build = script.index('run "$API_BUILD_SCRIPT"')
    save = script.index('as_app cp -a "$RELEASE_DIR/$API_DIR/$kept" "$KEPT/$kept"')
    bundle = script.index('run "$API_BUNDLE_SCRIPT"')
    restore = script.index('as_app cp -a "$KEPT/$kept/." "$RELEASE_DIR/$API_DIR/$kept"')
    check = script.index('[ -e "$RELEASE_DIR/$API_DIR/$MIGRATE_SCRIPT" ]')
    marked = script.index('o4o_mark "$BUILD_DIGEST" "$BUILT_MARKER"')
    assert build < save < bundle < restore < check < marked
    assert "BuildOutputMissing \"spec.build.api.migrateCommand:" in script[check:]
    kept = dataclasses.replace(CONTEXT, api_keep_across_bundle=("dist/database", "dist/locales"))
    assert "\nKEEP_ACROSS_BUNDLE=(dist/database dist/locales)\n" in render_script("build-api", kept)
    assert kept.api_build_digest != CONTEXT.api_build_digest  # a changed list builds again


def test_without_a_bundle_step_nothing_is_kept_but_the_migrate_script_is_still_checked() -> None:
    script = render_script("build-api", dataclasses.replace(CONTEXT, api_bundle_script=""))
    assert '"$KEPT/$kept"' not in script
    assert '[ -e "$RELEASE_DIR/$API_DIR/$MIGRATE_SCRIPT" ]' in script


# ---- health -------------------------------------------------------------------------------------

HEALTH_SCRIPTS = ("check-health", "settle-release", *ACTIVATING)


@pytest.mark.parametrize("name", HEALTH_SCRIPTS)
def test_no_host_script_reads_the_health_body(name: str) -> None:
    """The body is fetched and judged by the operator (pipeline/health.py); the host probes status codes."""
    script = render_script(name, CONTEXT)
    for reading in ("HEALTH_BODY_CHECK", "JSON.parse", "HEALTH_EXPECT", "health_body_check"):
        assert reading not in script
    # Only a backup's uploads (_backup.sh) and a restore's downloads of its objects (_restore.sh, the presigned URL
    # on curl's stdin) may curl from a script that migrates; nothing else there does.
    curls = [line for line in script.splitlines() if re.search(r"\bcurl -", line) and "--upload-file" not in line
             and '-o "$file.partial"' not in line]
    assert any("curl -sS -o /dev/null" in line for line in curls) if name == "check-health" else not curls


RESTORING = dataclasses.replace(CONTEXT, commit="a" * 40, restore_kind="in-place",
                                restore_id="20261205T120000Z-0123456789ab", restore_sha256="a" * 64,
                                restore_uploads_sha256="c" * 64,
                                restore_source="team-a/shop backup 20261205T120000Z-0123456789ab")


def _function(script: str, function: str) -> str:
    start = script.index(f"\n{function}() {{\n")
    return script[start:script.index("\n}\n", start)]


def test_a_restore_unpacks_the_uploads_before_anything_is_dropped_and_swaps_them_in_after_the_database() -> None:
    script = render_script("configure", RESTORING)
    assert f"\nRESTORE_UPLOADS_SHA256={'c' * 64}\n" in script
    assert '\nUPLOADS_DIR="$R"/srv/o4o/team-a.shop/shared/uploads\n' in script
    in_place = _function(script, "restore_database")
    steps = [in_place.index(step) for step in ("restore_download ", "restore_uploads_unpack", "stop_api",
                                               "reset_local_database", "restore_archive ", "restore_uploads_swap")]
    assert steps == sorted(steps)
    clone = _function(script, "clone_database")
    assert clone.index("restore_uploads_unpack") < clone.index("restore_archive ") < clone.index(
        "restore_uploads_swap keep")
    unpack = _function(script, "restore_uploads_unpack")
    assert 'as_app tar --extract' in unpack and '< "$archive"' in unpack  # the user unpacks; root hands it over
    backup = _function(script, "backup_uploads")
    assert 'as_app tar --create' in backup and '> "$archive.partial"' in backup


def test_a_backup_made_before_uploads_were_backed_up_restores_the_database_only() -> None:
    script = render_script("configure", dataclasses.replace(RESTORING, restore_uploads_sha256=""))
    assert "\nRESTORE_UPLOADS_SHA256=''\n" in script
    assert "holds no uploads" in _function(script, "restore_uploads_swap")


@pytest.mark.parametrize("changes", [{"restore_uploads_sha256": "C" * 64}, {"restore_uploads_sha256": "c; rm -rf /"},
                                     {"restore_kind": "", "restore_id": "", "restore_sha256": "",
                                      "restore_source": ""}])
def test_an_uploads_checksum_is_64_hex_digits_and_only_with_a_restore(changes: dict[str, str]) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        dataclasses.replace(RESTORING, **changes)
    assert caught.value.field == "spec.database.restore"


def test_check_health_takes_the_operators_verdict_on_the_body() -> None:
    script = render_script("check-health", CONTEXT)
    assert '\nHEALTH_BODY_OK="${O4O_HEALTH_BODY_OK:-0}"\n' in script  # unjudged is unhealthy
    assert "\nHEALTH_API_PATH=/api/health\n" in script
    assert '[ "$HEALTH_BODY_OK" = 1 ] || status=1' in script


def test_an_empty_body_field_leaves_the_status_code_alone() -> None:
    script = render_script("check-health", dataclasses.replace(CONTEXT, health_body_field=""))
    assert "\nHEALTH_BODY_OK=1\n" in script
    assert "${O4O_HEALTH_BODY_OK" not in script


@pytest.mark.parametrize("name", ACTIVATING)
def test_activation_records_what_to_roll_back_to_before_it_switches_and_checks_no_health(name: str) -> None:
    body = _body(render_script(name, CONTEXT))
    record = body.index('printf \'%s\\n\' "$previous" > "$PENDING_MARKER"')
    switch = body.index('o4o_relink_as_app "$TARGET" "$CURRENT"')
    reported = body.index('o4o_result rollbackTo "${rollback_to#releases/}"')
    assert record < switch < body.index("\nreload_app\n") < reported
    assert "health_check" not in body and "RolledBack" not in body


def test_settling_keeps_rolls_back_or_finishes_a_rollback_and_forgets_the_record() -> None:
    script = render_script("settle-release", CONTEXT)
    assert '\nPENDING_MARKER="$ACTIVATIONS/$COMMIT.previous"\n' in script
    for mode in ("healthy)", "failed)", "rolled-back)"):
        assert f"\n  {mode}\n" in script
    assert 'o4o_relink_as_app "$rollback_to" "$CURRENT"' in script


def test_spec_build_health_reaches_the_context() -> None:
    build = BuildSpec.model_validate({"health": {"path": "/healthz", "bodyField": "db.state", "expect": "up"},
                                      "api": {"uploadsDir": "var/uploads", "keepAcrossBundle": []}})
    context = dataclasses.replace(CONTEXT, **build_fields(build))
    assert (context.health_path, context.health_body_field, context.health_expect) == ("/healthz", "db.state", "up")
    assert (context.api_uploads_dir, context.api_keep_across_bundle) == ("var/uploads", ())
    script = render_script("check-health", context)
    assert "\nHEALTH_PATHS=(/ /healthz)\n" in script and "\nHEALTH_API_PATH=/healthz\n" in script


def test_the_models_defaults_are_o4os() -> None:
    body = BuildSpec().model_dump(by_alias=True, mode="json")
    assert body["health"] == {"path": "/api/health", "bodyField": "database.status", "expect": "healthy"}
    assert body["api"]["keepAcrossBundle"] == ["dist/database"]
    assert body["api"]["uploadsDir"] == "public/uploads"
    context = dataclasses.replace(CONTEXT, **build_fields(BuildSpec()))
    assert context == CONTEXT


# ---- uploads ------------------------------------------------------------------------------------

@pytest.mark.parametrize("https", [False, True])
def test_nginx_serves_the_shared_uploads_as_plain_files(https: bool) -> None:
    site = render_nginx_site(CONTEXT, https)
    start = site.index("location ^~ /uploads/ {")
    block = site[start:site.index("\n    }\n", start)]
    assert f"alias {CONTEXT.uploads_dir}/;" in block
    assert CONTEXT.uploads_dir == "/srv/o4o/team-a.shop/shared/uploads"
    assert "expires 7d;" in block and "autoindex off;" in block
    for forbidden in ("fastcgi", "proxy_pass", "try_files", "uwsgi", "scgi"):
        assert forbidden not in block
    # A location with its own add_header loses the server's: they are all repeated, and uploads are sandboxed.
    for header in ("X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy", "Content-Security-Policy"):
        assert f"add_header {header} " in block
    assert ("Strict-Transport-Security" in block) == https
    assert "sandbox" in block


def test_configure_makes_the_shared_uploads_directory_as_the_app_user() -> None:
    script = render_script("configure", CONTEXT)
    assert f'as_app chmod 0711 "$R"{CONTEXT.shared_dir}\n' in script
    assert f'as_app install -d -m 0755 "$R"{CONTEXT.uploads_dir}\n' in script
    assert script.index("as_app install -d -m 0755 \"$R\"") < script.index("\nlink_uploads\n")
    assert f"\nRELEASE_UPLOADS={CONTEXT.api_dir}/public/uploads\n" in script


@pytest.mark.parametrize(("changes", "field"), [
    ({"api_uploads_dir": "dist"}, "spec.build.api.uploadsDir"),
    ({"api_uploads_dir": "dist/database/uploads"}, "spec.build.api.uploadsDir"),
    ({"api_uploads_dir": "../shared"}, "spec.build.api.uploadsDir"),
    ({"api_keep_across_bundle": ("dist/../..",)}, "spec.build.api.keepAcrossBundle[0]"),
    ({"health_body_field": "database status"}, "spec.build.health.bodyField"),
    ({"health_body_field": "database.$(id)"}, "spec.build.health.bodyField"),
    ({"health_expect": "healthy'; reboot"}, "spec.build.health.expect"),
    ({"health_expect": ""}, "spec.build.health.expect"),
    ({"health_path": "/api/health?x"}, "spec.build.health.path"),
])
def test_values_that_could_escape_are_refused_naming_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        dataclasses.replace(CONTEXT, **changes)
    assert caught.value.field == field
