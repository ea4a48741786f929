# ---- release activation: migrate, switch, reload (the operator then checks health) -------
{% include "scripts/_release.sh" %}
TARGET="releases/$COMMIT"
MIGRATED_MARKER="$ACTIVATIONS/$COMMIT.migrated"
API_DIR={{ ctx.api_dir | shquote }}
MIGRATE_COMMAND=({% for word in ctx.api_migrate_command %}{{ " " if not loop.first else "" }}{{ word | shquote }}{% endfor %})
MIGRATE_ENV_FILE="$R"{{ ctx.env_path | shquote }}
{% include "scripts/_bootstrap.sh" %}
{% include "scripts/_restore.sh" %}
RELEASE_UPLOADS={{ (ctx.api_dir ~ "/" ~ ctx.api_uploads_dir) | shquote }}



# Uploads live outside the releases: the place the API writes them to, in the new release, links to the
# shared directory UPLOADS_DIR (_backup.sh's; nginx serves it at /uploads/), so a switch or a rollback keeps
# every upload.
link_uploads() {
  local link="$BASE_DIR/$TARGET/$RELEASE_UPLOADS"
  as_app install -d -m 0755 "$UPLOADS_DIR"
  if [ "$(as_app readlink "$link" 2>/dev/null || true)" = "$UPLOADS_DIR" ]; then
    return 0
  fi
  if as_app test -d "$link" && ! as_app test -L "$link"; then
    o4o_step "Moving the uploads release $COMMIT ships in $RELEASE_UPLOADS into the shared directory"
    as_app cp -a -n "$link/." "$UPLOADS_DIR" || true  # the shared copy wins; the release's are in git
    as_app rm -rf -- "$link"
  fi
  as_app mkdir -p "$(dirname "$link")"
  o4o_relink_as_app "$UPLOADS_DIR" "$link"
}

# The migration runs as the instance's user in the new release's API directory, with the instance's .env
# read by Node's own --env-file parser (as PM2 starts the API: no .env text is ever read by a shell).
# Its output goes to the activation log only. It runs once per release: root's marker remembers.
O4O_WITH_ENV="$(cat <<'JS'
const { spawnSync } = require('child_process');
const [cwd, command, ...args] = process.argv.slice(1);
const run = spawnSync(command, args, { cwd, stdio: 'inherit' });
if (run.error) { console.error(`${command}: ${run.error.message}`); process.exit(127); }
process.exit(run.status === null ? 128 : run.status);
JS
)"
migrate_release() {
  local migration="${MIGRATE_COMMAND[*]}"
  if [ "$(cat "$MIGRATED_MARKER" 2>/dev/null || true)" = "$migration" ]; then
    o4o_step "Release $COMMIT is already migrated ($migration)"
    return 0
  fi
  [ -f "$MIGRATE_ENV_FILE" ] || o4o_transient ConfigMissing "The .env file has not been uploaded yet"
  o4o_step "Migrating the database for release $COMMIT: $migration (output in ${ACTIVATION_LOG#"$R"})"
  printf '%s migration: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$migration" >> "$ACTIVATION_LOG"
  if as_app env NODE_ENV=production node --env-file="$MIGRATE_ENV_FILE" -e "$O4O_WITH_ENV" -- \
      "$BASE_DIR/$TARGET/$API_DIR" "${MIGRATE_COMMAND[@]}" >> "$ACTIVATION_LOG" 2>&1; then
    printf '%s\n' "$migration" > "$MIGRATED_MARKER"
    printf '%s migration succeeded\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >> "$ACTIVATION_LOG"
  else
    printf '%s migration failed\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >> "$ACTIVATION_LOG"
    # TypeORM's own line naming the migration that failed and why (the newest, as the log keeps every attempt).
    local failed_migration serving
    failed_migration="$(grep -o 'Migration "[^"]*" failed, error: .*' "$ACTIVATION_LOG" | tail -n 1 | cut -c1-300 || true)"
    if [ -n "$previous" ]; then
      serving="current stays on $previous, which keeps serving"
    else
      serving="nothing is served until a release migrates"
    fi
    o4o_transient MigrationFailed "The migration of release $COMMIT ($migration) failed${failed_migration:+: $failed_migration}; $serving (schema changes are not rolled back). Its output is on the host in ${ACTIVATION_LOG#"$R"}"
  fi
}


for built in .o4o-built-site .o4o-built-api; do
  [ -f "$BASE_DIR/$TARGET/$built" ] || o4o_transient ReleaseNotBuilt "Release $COMMIT is not fully built yet"
done

install -d -m 0700 "$ACTIVATIONS"
previous="$(readlink "$CURRENT" 2>/dev/null || true)"
# Before traffic switches: the uploads link, an in-place restore (once per backup id), the database's bootstrap
# (once), then its migration. A failure leaves current alone.
link_uploads
restore_database
bootstrap_database
migrate_release
bootstrap_after_migration
# The release to roll back to, should this one fail its health check: the one current leaves (recorded
# before the switch), or, when current already is this release, what a switch the operator did not see
# through recorded.
if [ "$previous" = "$TARGET" ]; then
  o4o_step "Release $COMMIT is already current"
else
  if [ -n "$previous" ] && [ -d "$BASE_DIR/$previous" ]; then
    printf '%s\n' "$previous" > "$PENDING_MARKER"
  else
    rm -f "$PENDING_MARKER"
  fi
  o4o_step "Switching current from ${previous:-nothing} to $TARGET"
  o4o_relink_as_app "$TARGET" "$CURRENT"
fi
reload_app
rollback_to="$(cat "$PENDING_MARKER" 2>/dev/null || true)"
[ -n "$rollback_to" ] && [ -d "$BASE_DIR/$rollback_to" ] || rollback_to=""
# The operator checks health now, then settles or rolls back (settle-release.sh).
o4o_result rollbackTo "${rollback_to#releases/}"
# ------------------------------------------------------------------------------
