#!/usr/bin/env bash
# On request (annotation deploy.o4o.io/backup-request): one backup of team-a.shop's database, now, uploaded to
# the presigned URL the operator made for it (O4O_BACKUP_PUT_URL). Rendered by o4o-operator. The password and the
# URL arrive in the environment, never in this script. Changes nothing but root's backup directory.
set -euo pipefail
# ---- common prelude, rendered by o4o-operator -------------------------------
# Paths are logical; "$R" is the root prefix (empty on a real server).
R="${O4O_ROOT:-}"
export DEBIAN_FRONTEND=noninteractive
export GIT_TERMINAL_PROMPT=0
export COREPACK_ENABLE_DOWNLOAD_PROMPT=0
umask 022

# Marker protocol: ::o4o::result key=value, ::o4o::permanent|transient reason=X message.
o4o_step() { printf '==> %s\n' "$*"; }
o4o_result() { printf '::o4o::result %s=%s\n' "$1" "$2"; }
o4o_permanent() {
  local reason="$1"
  shift
  printf '::o4o::permanent reason=%s %s\n' "$reason" "$*"
  exit 65
}
o4o_transient() {
  local reason="$1"
  shift
  printf '::o4o::transient reason=%s %s\n' "$reason" "$*"
  exit 1
}
# Replace a symlink atomically: a new link beside it, then rename over it.
o4o_relink() {
  ln -sfn "$1" "$2.o4o-tmp"
  mv -Tf "$2.o4o-tmp" "$2"
}
# The instance's own user. Root never writes through a path that user controls (its base directory and
# everything below): such writes run as that user, so a planted symlink can only reach its own files.
APP_USER=o4o-team-a-shop-6b3e3555
as_app() { runuser -u "$APP_USER" -- "$@"; }
o4o_relink_as_app() {
  as_app ln -sfn "$1" "$2.o4o-tmp"
  as_app mv -Tf "$2.o4o-tmp" "$2"
}
# ------------------------------------------------------------------------------
# ---- the instance's database, as its own role (O4O_DB_* from the environment) -
# Each script uses some of these (one declaration, so that one directive covers them all).
# shellcheck disable=SC2034
declare DB_MODE="${O4O_DB_MODE:-local}" DB_HOST="${O4O_DB_HOST:-127.0.0.1}" DB_PORT="${O4O_DB_PORT:-5432}" \
  DB_NAME="${O4O_DB_NAME:-}" DB_USER="${O4O_DB_USER:-}" DB_SSLMODE="${O4O_DB_SSLMODE:-require}" \
  DB_EXTENSIONS="${O4O_DB_EXTENSIONS:-}" DB_SSLROOTCERT="${O4O_DB_SSLROOTCERT:-}" \
  DB_STATE_DIR="$R"/var/lib/o4o/instances/team-a.shop \
  DB_RECORD="$R"/var/lib/o4o/instances/team-a.shop/database \
  BOOTSTRAP_RECORD="$R"/var/lib/o4o/instances/team-a.shop/bootstrap \
  BOOTSTRAP_STARTED="$R"/var/lib/o4o/instances/team-a.shop/bootstrap.started
# DB_STATE_DIR holds root's records: what the operator made in PostgreSQL (database), how the database was born
# (bootstrap) and a bootstrap that began and never finished (bootstrap.started).

# role_psql: the instance's own user and role reach its database over TCP with TLS, as the API will, in
# exactly the sslMode given; verify-ca and verify-full against the CA the operator uploaded for that user alone.
role_psql() {
  as_role psql -X -q -v ON_ERROR_STOP=1 -h "$DB_HOST" -p "$DB_PORT" -U "$DB_USER" -d "$DB_NAME" "$@"
}
# as_role <client...>: a libpq client as the instance's user, its password in the environment (never in argv).
as_role() {
  (
    cd /
    export PGPASSWORD="$O4O_DB_PASSWORD" PGSSLMODE="$DB_SSLMODE" PGCONNECT_TIMEOUT=15
    if [ -n "$DB_SSLROOTCERT" ]; then export PGSSLROOTCERT="$R$DB_SSLROOTCERT"; fi
    as_app "$@"
  )
}

# database_tables: "<tables>|<migrations table>" of the instance's database, as its role. A table is an
# ordinary or partitioned one in any schema but pg_catalog, information_schema, pg_toast* and pg_temp*, and
# not an extension's own (CREATE EXTENSION may make tables); the migrations table is TypeORM's.
database_tables() {
  role_psql -tA -F '|' -c "SELECT count(*), coalesce(min(n.nspname || '.' || c.relname) FILTER (WHERE c.relname IN ('migrations', 'typeorm_migrations')), '') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%' AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')"
}

# bootstrap_record_line: "<mode> <time> <commit>" of the finished bootstrap, empty when there is none.
bootstrap_record_line() {
  [ -s "$BOOTSTRAP_RECORD" ] || return 0
  awk -F= '$1 == "mode" { m = $2 } $1 == "at" { a = $2 } $1 == "commit" { c = $2 } END { print m, a, c }' \
    "$BOOTSTRAP_RECORD"
}
# ------------------------------------------------------------------------------
# ---- database backups (spec.database.backup) --------------------------------
# pg_dump --format=custom as the instance's own role and a tar (gzip) of the uploads as the instance's user, each
# with its SHA-256, uploaded with curl to the presigned URLs the operator made for exactly these two objects
# (O4O_BACKUP_PUT_URL, O4O_BACKUP_UPLOADS_PUT_URL: secrets, never in argv or the log). The host never holds the
# bucket's credentials. Before a migration run (_bootstrap.sh) a failure stops the release (BackupFailed) before
# anything is migrated or switched: the serving release keeps serving. backup.sh takes one on request.
BACKUP_ID=''
BACKUP_DIR="$DB_STATE_DIR/backups"
# Shared by every release (the API writes them, nginx serves them): what the rows of the database point to.
UPLOADS_DIR="$R"/srv/o4o/team-a.shop/shared/uploads

# backup_report <marker>: its record as results (the operator records the backup in status and in the object).
backup_report() {
  local key value
  while IFS='=' read -r key value; do
    case "$key" in
      id | size | sha256 | postgresVersion | migrationHead | uploadsSize | uploadsSha256 | seconds)
        o4o_result "backup${key^}" "$value"
        ;;
    esac
  done < "$1"
}

backup_fail() {
  rm -f -- "$BACKUP_DIR/$BACKUP_ID.dump.partial" "$BACKUP_DIR/$BACKUP_ID.dump" \
    "$BACKUP_DIR/$BACKUP_ID.uploads.tar.gz.partial" "$BACKUP_DIR/$BACKUP_ID.uploads.tar.gz"
  o4o_transient BackupFailed "$1; nothing was migrated or switched (the serving release keeps serving)"
}

# backup_uploads <archive>: the uploads as a tar (gzip). tar runs as the instance's user (it reads only what that
# user may: a link planted there leads nowhere else), root writes the archive into its own 0700 directory.
backup_uploads() {
  local archive="$1" status=0
  if as_app test -d "$UPLOADS_DIR"; then
    as_app tar --create --gzip --file=- --directory="$UPLOADS_DIR" . > "$archive.partial" 2> "$BACKUP_DIR/tar.err" ||
      status=$?
  else  # no uploads yet: an empty archive, so that a restore empties them too
    tar --create --gzip --file=- --files-from=/dev/null > "$archive.partial" 2> "$BACKUP_DIR/tar.err" || status=$?
  fi
  # 1: a file changed or went while tar read it (the API keeps writing uploads); what it archived is whole.
  if [ "$status" -gt 1 ]; then
    backup_fail "The archive of the uploads in ${UPLOADS_DIR#"$R"} failed: $(tail -n 3 "$BACKUP_DIR/tar.err" | cut -c1-300 | tr '\n' ' ')"
  fi
  mv -f -- "$archive.partial" "$archive"
}

# backup_put <file> <url> <what>: one object to its presigned URL; the URL reaches curl on its stdin, as a config
# line: not in argv, not in the log.
backup_put() {
  if ! curl -sS --fail --retry 2 --max-time 1800 --upload-file "$1" -H 'Content-Type: application/octet-stream' \
      --config - <<< "url = \"$2\"" > "$BACKUP_DIR/curl.out" 2>&1; then
    backup_fail "The upload of $3 ($(stat -c %s "$1") bytes) failed: $(tail -n 2 "$BACKUP_DIR/curl.out" | cut -c1-200 | tr '\n' ' ')"
  fi
}

# backup_take <marker> <why>: dump, checksum and upload backup $BACKUP_ID now; the record goes into <marker>.
backup_take() {
  local marker="$1" why="$2"
  [ -n "${O4O_BACKUP_PUT_URL:-}" ] || backup_fail "The operator passed no upload URL (O4O_BACKUP_PUT_URL)"
  [ -n "${O4O_BACKUP_UPLOADS_PUT_URL:-}" ] ||
    backup_fail "The operator passed no upload URL for the uploads (O4O_BACKUP_UPLOADS_PUT_URL)"
  [ -n "${O4O_DB_PASSWORD:-}" ] || backup_fail "The operator passed no database password (O4O_DB_PASSWORD)"
  install -d -m 0700 "$BACKUP_DIR"
  local dump="$BACKUP_DIR/$BACKUP_ID.dump" uploads="$BACKUP_DIR/$BACKUP_ID.uploads.tar.gz" version tables head=""
  local sha256 size uploads_sha256 uploads_size started="$SECONDS"
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
  backup_uploads "$uploads"
  sha256="$(sha256sum "$dump" | cut -d' ' -f1)"
  size="$(stat -c %s "$dump")"
  uploads_sha256="$(sha256sum "$uploads" | cut -d' ' -f1)"
  uploads_size="$(stat -c %s "$uploads")"
  # The uploads first: a dump in the bucket (what counts as a backup) always has its uploads beside it.
  backup_put "$uploads" "$O4O_BACKUP_UPLOADS_PUT_URL" "backup $BACKUP_ID's uploads"
  backup_put "$dump" "$O4O_BACKUP_PUT_URL" "backup $BACKUP_ID"
  printf 'id=%s\nsize=%s\nsha256=%s\npostgresVersion=%s\nmigrationHead=%s\nuploadsSize=%s\nuploadsSha256=%s\nseconds=%s\n' \
    "$BACKUP_ID" "$size" "$sha256" "$version" "$head" "$uploads_size" "$uploads_sha256" "$((SECONDS - started))" \
    > "$marker.tmp"
  mv -f -- "$marker.tmp" "$marker"
  rm -f -- "$dump" "$uploads" "$BACKUP_DIR/curl.out" "$BACKUP_DIR/pg_dump.err" "$BACKUP_DIR/tar.err"
  o4o_step "Backed up $DB_NAME: $size bytes, sha256 $sha256, PostgreSQL $version; uploads: $uploads_size bytes, sha256 $uploads_sha256"
  backup_report "$marker"
}
# ------------------------------------------------------------------------------

[ -n "$BACKUP_ID" ] || o4o_permanent BackupFailed "The operator named no backup (BACKUP_ID)"
backup_take "$BACKUP_DIR/$BACKUP_ID.record" "on request"
rm -f -- "$BACKUP_DIR/$BACKUP_ID.record"
