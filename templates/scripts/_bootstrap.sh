# ---- the database's bootstrap (spec.database.bootstrap): once, on an empty database ----
# The operator decided (pipeline/bootstrap.py, from database-facts.sh's report) whether this run bootstraps:
# BOOTSTRAP_MODE (migrate, command or synchronize) is empty when it does not. Root's records in the state directory make sure that a database
# is bootstrapped once only, and that a bootstrap which began and never finished starts again from empty.
{% include "scripts/_database.sh" %}
{% include "scripts/_backup.sh" %}
BOOTSTRAP_MODE={{ ctx.bootstrap_mode | shquote }}
BOOTSTRAP_COMMAND=({% for word in ctx.bootstrap_command %}{{ " " if not loop.first else "" }}{{ word | shquote }}{% endfor %})
BOOTSTRAP_RESET={{ ("1" if ctx.bootstrap_reset else "") | shquote }}
{% if ctx.bootstrap_mode == "synchronize" %}
# Mode synchronize (spec.build.api.dataSource, seedCommand): the schema from the API's own entities, every
# migration recorded as applied, then the seed. The helper is generic for TypeORM apps (templates/typeorm-bootstrap.js).
DATA_SOURCE_MODULE={{ ctx.api_data_source_module | shquote }}
DATA_SOURCE_EXPORT={{ ctx.api_data_source_export | shquote }}
DATA_SOURCE_BUILD=({% for word in ctx.api_data_source_build %}{{ " " if not loop.first else "" }}{{ word | shquote }}{% endfor %})
SEED_COMMAND=({% for word in ctx.api_seed_command %}{{ " " if not loop.first else "" }}{{ word | shquote }}{% endfor %})
O4O_TYPEORM_BOOTSTRAP="$(cat <<'JS'
{% include "typeorm-bootstrap.js" %}
JS
)"
{% endif %}

# backup_before_migration: only when this run migrates (a release not yet migrated, or a bootstrap to run), once
# per release (root's marker; a retry after a failed migration reports the same backup again).
backup_before_migration() {
  local marker="$ACTIVATIONS/$COMMIT.backup"
  [ -n "$BACKUP_ID" ] || return 0
  # Just restored (_restore.sh): the database holds exactly the backup restored, which is its backup.
  [ -z "$RESTORED_NOW" ] || return 0
  if [ "$(cat "$MIGRATED_MARKER" 2>/dev/null || true)" = "${MIGRATE_COMMAND[*]}" ] &&
      { [ -z "$BOOTSTRAP_MODE" ] || [ -s "$BOOTSTRAP_RECORD" ]; }; then
    return 0
  fi
  if [ -s "$marker" ]; then
    o4o_step "Release $COMMIT's database was backed up already ($(awk -F= '$1 == "id" { print $2 }' "$marker"))"
    backup_report "$marker"
    return 0
  fi
  backup_take "$marker" "before release $COMMIT migrates it"
}

report_bootstrap() {
  local line mode at commit
  line="$(bootstrap_record_line)"
  [ -n "$line" ] || return 0
  read -r mode at commit <<< "$line"
  o4o_result bootstrap "$mode"
  o4o_result bootstrappedAt "$at"
  o4o_result bootstrapCommit "$commit"
}

# bootstrap_mark <file> <mode>: root's record (mode, time, release), written whole or not at all.
bootstrap_mark() {
  install -d -m 0700 "$DB_STATE_DIR"
  printf 'mode=%s\nat=%s\ncommit=%s\n' "$2" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$COMMIT" > "$1.tmp"
  mv -f "$1.tmp" "$1"
}
bootstrap_finished() {
  bootstrap_mark "$BOOTSTRAP_RECORD" "$1"
  rm -f "$BOOTSTRAP_STARTED"
  o4o_step "The database $DB_NAME was bootstrapped ($1) for release $COMMIT"
}

# After a failed bootstrap, and before an in-place restore (_restore.sh): the operator drops only what it made.
# That is the local database its own record names (written by setup-database.sh), dropped and created again for
# the instance's role; an external database is never dropped (the operator decided so already; this is the last
# guard). reset_local_database [<reason> <field> <why>]: the defaults are the bootstrap's.
reset_local_database() {
  local reason="${1:-DatabaseBootstrapFailed}" field="${2:-spec.database.bootstrap.command}"
  local why="${3:-an earlier bootstrap failed}" recorded_database recorded_role extension
  recorded_database="$(awk -F= '$1 == "database" { print $2 }' "$DB_RECORD" 2>/dev/null || true)"
  recorded_role="$(awk -F= '$1 == "role" { print $2 }' "$DB_RECORD" 2>/dev/null || true)"
  if [ "$DB_MODE" != local ] || [ -z "$DB_NAME" ] || [ "$recorded_database" != "$DB_NAME" ] ||
      [ "$recorded_role" != "$DB_USER" ]; then
    o4o_permanent "$reason" "$field: $why, and database $DB_NAME is not one the operator made on this server, so it is not dropped; its owner must empty it"
  fi
  o4o_step "Dropping database $DB_NAME (the operator made it; $why) and creating it again"
  local -a admin=(runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -tA)
  (cd / && "${admin[@]}" -c "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" \
    -c "CREATE DATABASE $DB_NAME OWNER $DB_USER" \
    -c "REVOKE CONNECT, TEMPORARY ON DATABASE $DB_NAME FROM PUBLIC" \
    -c "GRANT CONNECT, TEMPORARY ON DATABASE $DB_NAME TO $DB_USER") >/dev/null ||
    o4o_transient DatabaseSetupFailed "Could not drop and create again database $DB_NAME"
  # shellcheck disable=SC2086 # a space-separated list of plain names
  for extension in ${DB_EXTENSIONS:-}; do
    (cd / && "${admin[@]}" -d "$DB_NAME" -c "CREATE EXTENSION IF NOT EXISTS \"$extension\"") >/dev/null ||
      o4o_transient DatabaseSetupFailed "Could not create extension $extension in $DB_NAME again"
  done
}

bootstrap_database() {
  # Every migration run (this bootstrap, or the release's migration right after it) is preceded by a backup.
  backup_before_migration
  if [ -z "$BOOTSTRAP_MODE" ] || [ -s "$BOOTSTRAP_RECORD" ]; then
    report_bootstrap
    return 0
  fi
  [ -n "${O4O_DB_PASSWORD:-}" ] ||
    o4o_permanent DatabasePasswordMissing "The operator passed no database password (O4O_DB_PASSWORD)"
  [ -z "$BOOTSTRAP_RESET" ] || reset_local_database
  if [ "$BOOTSTRAP_MODE" = migrate ]; then
    # The first migration run on the empty database is its bootstrap, recorded once the migration succeeds.
    [ -s "$BOOTSTRAP_STARTED" ] || bootstrap_mark "$BOOTSTRAP_STARTED" migrate
    return 0
  fi
  # Never a database that is not empty: checked again just before anything runs.
  local answer
  answer="$(database_tables 2>&1)" ||
    o4o_transient DatabaseUnavailable "Role $DB_USER could not list the tables of $DB_NAME: $answer"
  if [ "$answer" != "0|" ]; then
    o4o_transient DatabaseNotEmpty "The database $DB_NAME is no longer empty ($answer: tables|migrations table); it is not bootstrapped. The next try looks again"
  fi
  [ -f "$MIGRATE_ENV_FILE" ] || o4o_transient ConfigMissing "The .env file has not been uploaded yet"
  bootstrap_mark "$BOOTSTRAP_STARTED" "$BOOTSTRAP_MODE"
  if [ "$BOOTSTRAP_MODE" = command ]; then
    bootstrap_step spec.database.bootstrap.command "${BOOTSTRAP_COMMAND[*]}" "${BOOTSTRAP_COMMAND[@]}"
  elif [ "$BOOTSTRAP_MODE" = restore ]; then
    clone_database
  else
    synchronize_database
  fi
  printf '%s bootstrap succeeded\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >> "$ACTIVATION_LOG"
  bootstrap_finished "$BOOTSTRAP_MODE"
  report_bootstrap
}

# bootstrap_step <field> <what> <command...>: one step of the bootstrap, as the app user in the new release's API
# directory with the .env loaded; its output goes to the activation log. A failure stalls naming <field>.
bootstrap_step() {
  local field="$1" what="$2" output="$ACTIVATIONS/$COMMIT.bootstrap.log" next
  shift 2
  o4o_step "Bootstrapping the empty database $DB_NAME: $what (output in ${ACTIVATION_LOG#"$R"})"
  printf '%s bootstrap: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$what" >> "$ACTIVATION_LOG"
  if as_app env NODE_ENV=production node --env-file="$MIGRATE_ENV_FILE" -e "$O4O_WITH_ENV" -- \
      "$BASE_DIR/$TARGET/$API_DIR" "$@" > "$output" 2>&1; then
    cat "$output" >> "$ACTIVATION_LOG"
    rm -f "$output"
    return 0
  fi
  cat "$output" >> "$ACTIVATION_LOG"
  printf '%s bootstrap failed\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >> "$ACTIVATION_LOG"
  echo "The bootstrap's last lines:"
  tail -n 15 "$output" | cut -c1-300 | sed 's/^/    /'
  rm -f "$output"
  if [ "$DB_MODE" = local ]; then
    next="the next try (a changed command or a new release) drops the database the operator made and starts again from empty"
  else
    next="the operator never drops an external database: its owner must empty it before the next try (a changed spec or Secret)"
  fi
  o4o_permanent DatabaseBootstrapFailed "$field ($what) failed on the empty database $DB_NAME; $next; nothing was migrated or switched. Its output is on the host in ${ACTIVATION_LOG#"$R"}"
}
{% if ctx.bootstrap_mode == "synchronize" %}

# Mode synchronize: the data source's module (built first when the build leaves none), the TypeORM helper, the seed.
synchronize_database() {
  local api="$BASE_DIR/$TARGET/$API_DIR"
  if [ "${#DATA_SOURCE_BUILD[@]}" -gt 0 ] && ! as_app test -e "$api/$DATA_SOURCE_MODULE"; then
    bootstrap_step spec.build.api.dataSource.buildCommand "${DATA_SOURCE_BUILD[*]}" "${DATA_SOURCE_BUILD[@]}"
  fi
  as_app test -e "$api/$DATA_SOURCE_MODULE" ||
    o4o_permanent DatabaseBootstrapFailed "spec.build.api.dataSource.module: release $COMMIT has no $API_DIR/$DATA_SOURCE_MODULE to make the schema from (spec.build.api.dataSource.buildCommand makes it when the build does not); nothing was bootstrapped"
  bootstrap_step spec.build.api.dataSource \
    "TypeORM synchronize and record every migration, from $DATA_SOURCE_MODULE ($DATA_SOURCE_EXPORT)" \
    node -e "$O4O_TYPEORM_BOOTSTRAP" -- "$DATA_SOURCE_MODULE" "$DATA_SOURCE_EXPORT"
  if [ "${#SEED_COMMAND[@]}" -gt 0 ]; then
    bootstrap_step spec.build.api.seedCommand "${SEED_COMMAND[*]}" "${SEED_COMMAND[@]}"
  fi
}
{% endif %}

# After the migration: a first migration run on the empty database (mode migrate) was its bootstrap.
bootstrap_after_migration() {
  if [ "$BOOTSTRAP_MODE" = migrate ] && [ ! -s "$BOOTSTRAP_RECORD" ] &&
      [ "$(awk -F= '$1 == "mode" { print $2 }' "$BOOTSTRAP_STARTED" 2>/dev/null || true)" = migrate ]; then
    bootstrap_finished migrate
    report_bootstrap
  fi
}
# ------------------------------------------------------------------------------
