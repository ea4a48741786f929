# ---- database backups (spec.database.backup) --------------------------------
# pg_dump --format=custom as the instance's own role, its SHA-256, uploaded with curl to the presigned URL the
# operator made for exactly this object (O4O_BACKUP_PUT_URL: a secret, never in argv or the log). The host never
# holds the bucket's credentials. Before a migration run (_bootstrap.sh) a failure stops the release (BackupFailed)
# before anything is migrated or switched: the serving release keeps serving. backup.sh takes one on request.
BACKUP_ID={{ ctx.backup_id | shquote }}
BACKUP_DIR="$DB_STATE_DIR/backups"

# backup_report <marker>: its record as results (the operator records the backup in status and in the object).
backup_report() {
  local key value
  while IFS='=' read -r key value; do
    case "$key" in
      id | size | sha256 | postgresVersion | migrationHead | seconds)
        o4o_result "backup${key^}" "$value"
        ;;
    esac
  done < "$1"
}

backup_fail() {
  rm -f -- "$BACKUP_DIR/$BACKUP_ID.dump.partial" "$BACKUP_DIR/$BACKUP_ID.dump"
  o4o_transient BackupFailed "$1; nothing was migrated or switched (the serving release keeps serving)"
}

# backup_take <marker> <why>: dump, checksum and upload backup $BACKUP_ID now; the record goes into <marker>.
backup_take() {
  local marker="$1" why="$2"
  [ -n "${O4O_BACKUP_PUT_URL:-}" ] || backup_fail "The operator passed no upload URL (O4O_BACKUP_PUT_URL)"
  [ -n "${O4O_DB_PASSWORD:-}" ] || backup_fail "The operator passed no database password (O4O_DB_PASSWORD)"
  install -d -m 0700 "$BACKUP_DIR"
  local dump="$BACKUP_DIR/$BACKUP_ID.dump" version tables head="" sha256 size started="$SECONDS"
  o4o_step "Backing up database $DB_NAME $why (backup $BACKUP_ID)"
  version="$(role_psql -tA -c 'SHOW server_version_num' 2>&1)" ||
    backup_fail "Role $DB_USER could not reach $DB_NAME to back it up: $version"
  tables="$(database_tables 2>/dev/null || true)"
  if [[ "${tables#*|}" =~ ^[a-z_][a-z0-9_]*\.[a-z_]+$ ]]; then
    head="$(role_psql -tA -c "SELECT name FROM ${tables#*|} ORDER BY id DESC LIMIT 1" 2>/dev/null || true)"
  fi
  # Root opens the file (in its own 0700 directory); the dump runs as the instance's role, password in the env.
  if ! as_role pg_dump --format=custom --no-owner -h "$DB_HOST" -p "$DB_PORT" -U "$DB_USER" -d "$DB_NAME" \
      > "$dump.partial" 2> "$BACKUP_DIR/pg_dump.err"; then
    backup_fail "pg_dump of $DB_NAME failed: $(tail -n 3 "$BACKUP_DIR/pg_dump.err" | cut -c1-300 | tr '\n' ' ')"
  fi
  mv -f -- "$dump.partial" "$dump"
  sha256="$(sha256sum "$dump" | cut -d' ' -f1)"
  size="$(stat -c %s "$dump")"
  # The URL reaches curl on its stdin, as a config line: not in argv, not in the log.
  if ! curl -sS --fail --retry 2 --max-time 1800 --upload-file "$dump" -H 'Content-Type: application/octet-stream' \
      --config - <<< "url = \"$O4O_BACKUP_PUT_URL\"" > "$BACKUP_DIR/curl.out" 2>&1; then
    backup_fail "The upload of backup $BACKUP_ID ($size bytes) failed: $(tail -n 2 "$BACKUP_DIR/curl.out" | cut -c1-200 | tr '\n' ' ')"
  fi
  printf 'id=%s\nsize=%s\nsha256=%s\npostgresVersion=%s\nmigrationHead=%s\nseconds=%s\n' \
    "$BACKUP_ID" "$size" "$sha256" "$version" "$head" "$((SECONDS - started))" > "$marker.tmp"
  mv -f -- "$marker.tmp" "$marker"
  rm -f -- "$dump" "$BACKUP_DIR/curl.out" "$BACKUP_DIR/pg_dump.err"
  o4o_step "Backed up $DB_NAME: $size bytes, sha256 $sha256, PostgreSQL $version"
  backup_report "$marker"
}
# ------------------------------------------------------------------------------
