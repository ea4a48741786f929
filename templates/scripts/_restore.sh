# ---- restoring a backup: in place (spec.database.restore) or into an empty database (a clone) ----
# The operator decided (pipeline/restore.py) what is restored: RESTORE_KIND in-place or clone, empty for nothing.
# The dump comes from a presigned GET URL for exactly that object (O4O_RESTORE_GET_URL: a secret that reaches curl
# on its stdin, never argv or the log) and is checked against the SHA-256 of its record before anything is dropped.
# Root turns the archive into SQL (pg_restore --no-owner --no-privileges, without the archive's extensions, which
# the operator creates as the superuser), and the instance's own role runs it in one transaction: the restored
# objects are the role's, and a failure leaves nothing half-restored.
RESTORE_KIND={{ ctx.restore_kind | shquote }}
RESTORE_ID={{ ctx.restore_id | shquote }}
RESTORE_SHA256={{ ctx.restore_sha256 | shquote }}
RESTORE_SOURCE={{ ctx.restore_source | shquote }}
RESTORE_DIR="$DB_STATE_DIR/restore"
# Root's records: the last in-place restore finished (backup, times, the backup taken before it), one begun and
# not finished, and where a clone's database came from.
RESTORE_RECORD="$DB_STATE_DIR/restored"
RESTORE_STARTED="$DB_STATE_DIR/restore.started"
CLONE_SOURCE_RECORD="$DB_STATE_DIR/bootstrap.source"
RESTORED_NOW=""

restore_value() { awk -F= -v k="$1" '$1 == k { print $2 }' "$2" 2>/dev/null || true; }

report_restore() {
  if [ -s "$RESTORE_RECORD" ]; then
    o4o_result restoredBackup "$(restore_value backup "$RESTORE_RECORD")"
    o4o_result restoreStartedAt "$(restore_value startedAt "$RESTORE_RECORD")"
    o4o_result restoreFinishedAt "$(restore_value finishedAt "$RESTORE_RECORD")"
    o4o_result restorePreBackup "$(restore_value preBackup "$RESTORE_RECORD")"
  fi
  if [ -s "$CLONE_SOURCE_RECORD" ]; then o4o_result bootstrapSource "$(cat "$CLONE_SOURCE_RECORD")"; fi
}

# restore_download <field>: the dump into root's 0700 directory, checked against its record's SHA-256.
restore_download() {
  local field="$1" dump="$RESTORE_DIR/$RESTORE_ID.dump" actual
  [ -n "${O4O_RESTORE_GET_URL:-}" ] ||
    o4o_transient RestoreFailed "The operator passed no download URL (O4O_RESTORE_GET_URL); nothing was restored"
  install -d -m 0700 "$RESTORE_DIR"
  o4o_step "Downloading $RESTORE_SOURCE"
  if ! curl -sS --fail --retry 2 --max-time 1800 -o "$dump.partial" \
      --config - <<< "url = \"$O4O_RESTORE_GET_URL\"" > "$RESTORE_DIR/curl.out" 2>&1; then
    local why
    why="$(tail -n 2 "$RESTORE_DIR/curl.out" | cut -c1-200 | tr '\n' ' ')"
    rm -f -- "$dump.partial" "$RESTORE_DIR/curl.out"
    o4o_transient RestoreFailed "The download of $RESTORE_SOURCE failed: $why; nothing was restored"
  fi
  rm -f -- "$RESTORE_DIR/curl.out"
  actual="$(sha256sum "$dump.partial" | cut -d' ' -f1)"
  if [ "$actual" != "$RESTORE_SHA256" ]; then
    rm -f -- "$dump.partial"
    o4o_permanent BackupChecksumMismatch "$field: $RESTORE_SOURCE downloaded with SHA-256 $actual, not the $RESTORE_SHA256 its record says; nothing was dropped or restored"
  fi
  mv -f -- "$dump.partial" "$dump"
  o4o_step "Downloaded $RESTORE_SOURCE: $(stat -c %s "$dump") bytes, sha256 $actual (as recorded)"
}

# restore_archive <field> <after>: the downloaded dump into the (empty) database, as the instance's role, in one
# transaction. <after> says what a failure leaves, for the stall's message.
restore_archive() {
  local field="$1" after="$2" dump="$RESTORE_DIR/$RESTORE_ID.dump" list="$RESTORE_DIR/$RESTORE_ID.list"
  # The archive's table of contents, less its extensions and their comments (the role may not make them).
  if ! pg_restore --list "$dump" > "$list.all" 2> "$RESTORE_DIR/pg_restore.err"; then
    restore_archive_failed "$field" "pg_restore could not read the archive" "$after"
  fi
  grep -v -E '^[0-9]+; [0-9]+ [0-9]+ (EXTENSION|COMMENT - EXTENSION) ' "$list.all" > "$list" || true
  o4o_step "Restoring $RESTORE_SOURCE into $DB_NAME as role $DB_USER"
  if ! pg_restore --no-owner --no-privileges --use-list="$list" --file=- "$dump" 2> "$RESTORE_DIR/pg_restore.err" |
      role_psql --single-transaction -f - > /dev/null 2>> "$RESTORE_DIR/pg_restore.err"; then
    restore_archive_failed "$field" "the restore failed" "$after"
  fi
  rm -f -- "$dump" "$list" "$list.all" "$RESTORE_DIR/pg_restore.err"
}
restore_archive_failed() {
  local why
  why="$(grep -v '^\s*$' "$RESTORE_DIR/pg_restore.err" | tail -n 3 | cut -c1-300 | tr '\n' ' ')"
  rm -f -- "$RESTORE_DIR/$RESTORE_ID.dump" "$RESTORE_DIR/$RESTORE_ID.list" "$RESTORE_DIR/$RESTORE_ID.list.all"
  o4o_permanent RestoreFailed "$1: $2 ($why); $3"
}

# The API goes down for an in-place restore (reload_app starts it again once the release is migrated).
stop_api() {
  [ -f "$ECOSYSTEM" ] || return 0
  o4o_step "Stopping the API (PM2) for the restore"
  as_app pm2 stop "$ECOSYSTEM" > /dev/null 2>&1 || o4o_step "PM2 had no running API to stop"
}

# restore_database: the in-place restore, once per backup id (root's record says which was restored last): a backup
# of what the database holds now, the API stopped, the download checked, the local database dropped and created
# again (so that it holds exactly the dump: nothing a later migration made survives), the dump restored, and the
# current release's migration run again.
restore_database() {
  report_restore
  [ "$RESTORE_KIND" = in-place ] || return 0
  if [ "$(restore_value backup "$RESTORE_RECORD")" = "$RESTORE_ID" ]; then
    o4o_step "Backup $RESTORE_ID was restored already ($(restore_value finishedAt "$RESTORE_RECORD")): not again"
    return 0
  fi
  [ -n "${O4O_DB_PASSWORD:-}" ] ||
    o4o_permanent DatabasePasswordMissing "The operator passed no database password (O4O_DB_PASSWORD)"
  [ -n "$BACKUP_ID" ] || o4o_permanent RestoreUnavailable "spec.database.restore: the operator named no backup to take first"
  # What the database holds now is backed up first, once per restore: a retry after a failed restore (the
  # database then empty) reports that same backup and never backs up the emptied database.
  local before="$DB_STATE_DIR/restore-$RESTORE_ID.backup" started pre
  if [ -s "$before" ]; then
    backup_report "$before"
  else
    backup_take "$before" "before restoring backup $RESTORE_ID"
  fi
  pre="$(restore_value id "$before")"
  started="$(restore_value startedAt "$RESTORE_STARTED")"
  if [ "$(restore_value backup "$RESTORE_STARTED")" != "$RESTORE_ID" ] || [ -z "$started" ]; then
    started="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    printf 'backup=%s\nstartedAt=%s\n' "$RESTORE_ID" "$started" > "$RESTORE_STARTED.tmp"
    mv -f -- "$RESTORE_STARTED.tmp" "$RESTORE_STARTED"
  fi
  restore_download spec.database.restore.backup
  stop_api
  reset_local_database RestoreFailed "spec.database.restore" "before restoring backup $RESTORE_ID"
  restore_archive spec.database.restore.backup "the database $DB_NAME is empty now and the API stopped; backup $pre holds what it held before (restore it with spec.database.restore.backup: $pre)"
  rm -f -- "$MIGRATED_MARKER"
  printf 'backup=%s\nstartedAt=%s\nfinishedAt=%s\npreBackup=%s\n' "$RESTORE_ID" "$started" \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$pre" > "$RESTORE_RECORD.tmp"
  mv -f -- "$RESTORE_RECORD.tmp" "$RESTORE_RECORD"
  rm -f -- "$RESTORE_STARTED" "$before"
  printf '%s restored backup %s (backup %s taken before)\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$RESTORE_ID" "$pre" >> "$ACTIVATION_LOG"
  RESTORED_NOW=1
  o4o_step "Restored backup $RESTORE_ID into $DB_NAME; release $COMMIT migrates it next"
  report_restore
}

# A clone (bootstrap mode restore): the empty database from another instance's backup or a template dump.
clone_database() {
  restore_download spec.database.bootstrap.restore
  restore_archive spec.database.bootstrap.restore "nothing was migrated or switched, and the next try starts again from empty"
  printf '%s\n' "$RESTORE_SOURCE" > "$CLONE_SOURCE_RECORD"
  o4o_result bootstrapSource "$RESTORE_SOURCE"
  printf '%s bootstrap: restored %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$RESTORE_SOURCE" >> "$ACTIVATION_LOG"
}
# ------------------------------------------------------------------------------
