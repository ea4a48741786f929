# ---- restoring a backup: in place (spec.database.restore) or into an empty database (a clone) ----
# The operator decided (pipeline/restore.py) what is restored: RESTORE_KIND in-place or clone, empty for nothing.
# The dump comes from a presigned GET URL for exactly that object (O4O_RESTORE_GET_URL: a secret that reaches curl
# on its stdin, never argv or the log) and is checked against the SHA-256 of its record before anything is dropped;
# the uploads taken with it (O4O_RESTORE_UPLOADS_GET_URL) likewise, when the backup has them (RESTORE_UPLOADS_SHA256;
# one made before uploads were backed up restores the database only).
# Root turns the archive into SQL (pg_restore --no-owner --no-privileges, without the archive's extensions, which
# the operator creates as the superuser), and the instance's own role runs it in one transaction: the restored
# objects are the role's, and a failure leaves nothing half-restored. The uploads are unpacked by the instance's
# user beside the shared directory before anything is dropped, and swapped in once the database is restored.
RESTORE_KIND={{ ctx.restore_kind | shquote }}
RESTORE_ID={{ ctx.restore_id | shquote }}
RESTORE_SHA256={{ ctx.restore_sha256 | shquote }}
RESTORE_UPLOADS_SHA256={{ ctx.restore_uploads_sha256 | shquote }}
RESTORED_UPLOADS="$UPLOADS_DIR.restoring"
REPLACED_UPLOADS="$UPLOADS_DIR.replaced"
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

# restore_fetch <field> <url> <file> <sha256> <what>: one object into root's 0700 directory, checked against the
# SHA-256 its record says before anything is dropped.
restore_fetch() {
  local field="$1" url="$2" file="$3" expected="$4" what="$5" actual why
  o4o_step "Downloading $what"
  if ! curl -sS --fail --retry 2 --max-time 1800 -o "$file.partial" \
      --config - <<< "url = \"$url\"" > "$RESTORE_DIR/curl.out" 2>&1; then
    why="$(tail -n 2 "$RESTORE_DIR/curl.out" | cut -c1-200 | tr '\n' ' ')"
    rm -f -- "$file.partial" "$RESTORE_DIR/curl.out"
    o4o_transient RestoreFailed "The download of $what failed: $why; nothing was restored"
  fi
  rm -f -- "$RESTORE_DIR/curl.out"
  actual="$(sha256sum "$file.partial" | cut -d' ' -f1)"
  if [ "$actual" != "$expected" ]; then
    rm -f -- "$file.partial" "$RESTORE_DIR/$RESTORE_ID".*
    o4o_permanent BackupChecksumMismatch "$field: $what downloaded with SHA-256 $actual, not the $expected its record says; nothing was dropped or restored"
  fi
  mv -f -- "$file.partial" "$file"
  o4o_step "Downloaded $what: $(stat -c %s "$file") bytes, sha256 $actual (as recorded)"
}

# restore_download <field>: the dump and, when the backup has them, its uploads, both checked.
restore_download() {
  local field="$1"
  [ -n "${O4O_RESTORE_GET_URL:-}" ] ||
    o4o_transient RestoreFailed "The operator passed no download URL (O4O_RESTORE_GET_URL); nothing was restored"
  install -d -m 0700 "$RESTORE_DIR"
  restore_fetch "$field" "$O4O_RESTORE_GET_URL" "$RESTORE_DIR/$RESTORE_ID.dump" "$RESTORE_SHA256" "$RESTORE_SOURCE"
  [ -n "$RESTORE_UPLOADS_SHA256" ] || return 0
  [ -n "${O4O_RESTORE_UPLOADS_GET_URL:-}" ] ||
    o4o_transient RestoreFailed "The operator passed no download URL for the uploads (O4O_RESTORE_UPLOADS_GET_URL); nothing was restored"
  restore_fetch "$field" "$O4O_RESTORE_UPLOADS_GET_URL" "$RESTORE_DIR/$RESTORE_ID.uploads.tar.gz" \
    "$RESTORE_UPLOADS_SHA256" "the uploads of $RESTORE_SOURCE"
}

# restore_uploads_unpack: the downloaded uploads into a directory beside the shared one, by the instance's user
# (tar as that user writes nowhere else; root hands it the archive on stdin). Nothing is replaced yet.
restore_uploads_unpack() {
  local archive="$RESTORE_DIR/$RESTORE_ID.uploads.tar.gz" why
  [ -n "$RESTORE_UPLOADS_SHA256" ] || return 0
  if ! as_app test -e "$UPLOADS_DIR" && as_app test -d "$REPLACED_UPLOADS"; then  # a swap cut short: put them back first
    as_app mv -T -- "$REPLACED_UPLOADS" "$UPLOADS_DIR"
  fi
  as_app rm -rf -- "$RESTORED_UPLOADS"
  as_app install -d -m 0755 "$RESTORED_UPLOADS"
  if ! as_app tar --extract --gzip --file=- --no-same-owner --directory="$RESTORED_UPLOADS" < "$archive" \
      2> "$RESTORE_DIR/tar.err"; then
    why="$(tail -n 3 "$RESTORE_DIR/tar.err" | cut -c1-300 | tr '\n' ' ')"
    as_app rm -rf -- "$RESTORED_UPLOADS"
    rm -f -- "$RESTORE_DIR/$RESTORE_ID".* "$RESTORE_DIR/tar.err"
    o4o_transient RestoreFailed "The uploads of $RESTORE_SOURCE could not be unpacked ($why); nothing was dropped or restored"
  fi
  rm -f -- "$archive" "$RESTORE_DIR/tar.err"
}

# restore_uploads_swap [keep]: the unpacked uploads take the shared directory's place (two renames by the
# instance's user; nginx serves the directory by its path), the old ones go. With "keep" (a clone) what the
# directory held that the backup lacks stays (the files the release ships in its uploads directory).
restore_uploads_swap() {
  if [ -z "$RESTORE_UPLOADS_SHA256" ]; then
    o4o_step "Backup $RESTORE_ID holds no uploads (made before uploads were backed up): ${UPLOADS_DIR#"$R"} stays as it is"
    return 0
  fi
  if [ "${1:-}" = keep ] && as_app test -d "$UPLOADS_DIR"; then
    as_app cp -a -n -- "$UPLOADS_DIR/." "$RESTORED_UPLOADS" || true
  fi
  as_app rm -rf -- "$REPLACED_UPLOADS"
  if as_app test -e "$UPLOADS_DIR" || as_app test -L "$UPLOADS_DIR"; then
    as_app mv -T -- "$UPLOADS_DIR" "$REPLACED_UPLOADS"
  fi
  as_app mv -T -- "$RESTORED_UPLOADS" "$UPLOADS_DIR"
  as_app rm -rf -- "$REPLACED_UPLOADS"
  o4o_step "Restored the uploads of $RESTORE_SOURCE into ${UPLOADS_DIR#"$R"}"
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
  as_app rm -rf -- "$RESTORED_UPLOADS"  # the uploads stay as they were
  o4o_permanent RestoreFailed "$1: $2 ($why); $3"
}

# The API goes down for an in-place restore (reload_app starts it again once the release is migrated).
stop_api() {
  [ -f "$ECOSYSTEM" ] || return 0
  o4o_step "Stopping the API (PM2) for the restore"
  as_app pm2 stop "$ECOSYSTEM" > /dev/null 2>&1 || o4o_step "PM2 had no running API to stop"
}

# restore_database: the in-place restore, once per backup id (root's record says which was restored last): a backup
# of what the database and the uploads hold now, the downloads checked and the uploads unpacked beside, the API
# stopped, the local database dropped and created again (so that it holds exactly the dump: nothing a later
# migration made survives), the dump restored, the uploads swapped in, and the current release's migration run
# again.
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
  restore_uploads_unpack
  stop_api
  reset_local_database RestoreFailed "spec.database.restore" "before restoring backup $RESTORE_ID"
  restore_archive spec.database.restore.backup "the database $DB_NAME is empty now and the API stopped; backup $pre holds what it held before (restore it with spec.database.restore.backup: $pre)"
  restore_uploads_swap
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
  restore_uploads_unpack
  restore_archive spec.database.bootstrap.restore "nothing was migrated or switched, and the next try starts again from empty"
  restore_uploads_swap keep
  printf '%s\n' "$RESTORE_SOURCE" > "$CLONE_SOURCE_RECORD"
  o4o_result bootstrapSource "$RESTORE_SOURCE"
  printf '%s bootstrap: restored %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$RESTORE_SOURCE" >> "$ACTIVATION_LOG"
}
# ------------------------------------------------------------------------------
