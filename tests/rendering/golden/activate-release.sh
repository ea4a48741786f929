#!/usr/bin/env bash
# Activate the release 0123456789abcdef0123456789abcdef01234567 of shop: migrate, switch `current` and reload PM2. The
# operator then checks health (check-health.sh) and settles or rolls back (settle-release.sh).
# Rendered by o4o-operator. Safe to re-run.
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
# ---- nginx site selection ----------------------------------------------------
NGINX_DIR="$R"/etc/nginx
SITE_HTTP="$R"/etc/nginx/sites-available/o4o-team-a.shop.http.conf
SITE_HTTPS="$R"/etc/nginx/sites-available/o4o-team-a.shop.https.conf
SITE_ENABLED="$R"/etc/nginx/sites-enabled/o4o-team-a.shop.conf
# shellcheck disable=SC2034 # read by configure and issue-cert, not by every script
CERTIFICATE="$R"/etc/letsencrypt/live/shop.example.com/fullchain.pem
NGINX_APPLIED="$R"/var/lib/o4o/instances/team-a.shop/nginx-applied

# enable_site http|https: point sites-enabled at that variant, test and reload nginx if anything changed.
enable_site() {
  local variant="$1" source link applied_now previous changed=0
  if [ "$variant" = https ]; then source="$SITE_HTTPS"; else source="$SITE_HTTP"; fi
  [ -f "$source" ] || o4o_transient ConfigMissing "The $variant nginx site has not been uploaded yet"
  link="../sites-available/$(basename "$source")"
  install -d -m 0755 "$NGINX_DIR/sites-enabled"
  previous="$(readlink "$SITE_ENABLED" 2>/dev/null || true)"
  if [ "$previous" != "$link" ]; then
    o4o_relink "$link" "$SITE_ENABLED"
    changed=1
  fi
  if [ -e "$NGINX_DIR/sites-enabled/default" ] || [ -L "$NGINX_DIR/sites-enabled/default" ]; then
    o4o_step "Disabling the default nginx site"
    rm -f "$NGINX_DIR/sites-enabled/default"
    changed=1
  fi
  applied_now="$variant $(sha256sum < "$source" | cut -d ' ' -f 1)"
  if [ "$changed" = 0 ] && [ "$(cat "$NGINX_APPLIED" 2>/dev/null || true)" = "$applied_now" ]; then
    o4o_step "nginx already serves the $variant site"
  else
    if ! nginx -t; then
      # Leave nginx as it was, so that its next reload or reboot still works.
      if [ -n "$previous" ]; then o4o_relink "$previous" "$SITE_ENABLED"; else rm -f "$SITE_ENABLED"; fi
      o4o_permanent NginxConfigInvalid "nginx rejected the $variant site; the previous site stays enabled"
    fi
    if systemctl is-active --quiet nginx; then systemctl reload nginx; fi
    printf '%s\n' "$applied_now" > "$NGINX_APPLIED"
    o4o_step "nginx now serves the $variant site"
  fi
  if ! systemctl is-active --quiet nginx; then
    o4o_step "Starting nginx: it was not running"
    systemctl start nginx
  fi
  o4o_result nginxSite "$variant"
}
# ------------------------------------------------------------------------------
# ---- release activation: migrate, switch, reload (the operator then checks health) -------
# ---- a release's activation state: where it lives, how PM2 reloads it, what is pruned --------
COMMIT=0123456789abcdef0123456789abcdef01234567
BASE_DIR="$R"/srv/o4o/team-a.shop
RELEASES_DIR="$BASE_DIR/releases"
CURRENT="$BASE_DIR/current"
ECOSYSTEM="$R"/srv/o4o/team-a.shop/shared/ecosystem.config.js
KEEP_RELEASES=5
# Root writes the activation log and the markers (<commit>.failed, .migrated, .previous), so they live in its own state directory.
ACTIVATIONS="$R"/var/lib/o4o/instances/team-a.shop/activations
ACTIVATION_LOG="$ACTIVATIONS/$COMMIT.log"
# Written before current switches to this release, removed once it is settled (healthy, or rolled back):
# the release to roll back to, so an activation the operator did not see through resumes correctly.
PENDING_MARKER="$ACTIVATIONS/$COMMIT.previous"

reload_app() {
  [ -f "$ECOSYSTEM" ] || o4o_transient ConfigMissing "The PM2 ecosystem file has not been uploaded yet"
  # The app user's PM2 daemon belongs under its systemd unit, never to this SSH session.
  if ! systemctl is-active --quiet "pm2-$APP_USER"; then
    o4o_step "Starting pm2-$APP_USER: it was not running"
    systemctl start "pm2-$APP_USER"
  fi
  as_app pm2 startOrReload "$ECOSYSTEM" --update-env
  as_app pm2 save --force >/dev/null
}

prune_releases() {
  local live count=0 name
  live="$(readlink "$CURRENT" 2>/dev/null || true)"
  live="${live#releases/}"
  while read -r _ name; do
    count=$((count + 1))
    if [ "$count" -le "$KEEP_RELEASES" ] || [ "$name" = "$live" ]; then
      continue
    fi
    o4o_step "Pruning release $name"
    as_app rm -rf -- "${RELEASES_DIR:?}/$name"
    rm -f -- "$ACTIVATIONS/$name.log" "$ACTIVATIONS/$name.failed" "$ACTIVATIONS/$name.migrated" \
      "$ACTIVATIONS/$name.previous"
  done < <(find "$RELEASES_DIR" -mindepth 1 -maxdepth 1 -type d ! -name '*.staging' -printf '%T@ %f\n' | sort -rn)
}
# ------------------------------------------------------------------------------
TARGET="releases/$COMMIT"
MIGRATED_MARKER="$ACTIVATIONS/$COMMIT.migrated"
API_DIR=apps/api-server
MIGRATE_COMMAND=(node dist/migrate.js)
MIGRATE_ENV_FILE="$R"/srv/o4o/team-a.shop/shared/.env
# ---- the database's bootstrap (spec.database.bootstrap): once, on an empty database ----
# The operator decided (pipeline/bootstrap.py, from database-facts.sh's report) whether this run bootstraps:
# BOOTSTRAP_MODE (migrate, command or synchronize) is empty when it does not. Root's records in the state directory make sure that a database
# is bootstrapped once only, and that a bootstrap which began and never finished starts again from empty.
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
BOOTSTRAP_MODE=''
BOOTSTRAP_COMMAND=()
BOOTSTRAP_RESET=''

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

# After the migration: a first migration run on the empty database (mode migrate) was its bootstrap.
bootstrap_after_migration() {
  if [ "$BOOTSTRAP_MODE" = migrate ] && [ ! -s "$BOOTSTRAP_RECORD" ] &&
      [ "$(awk -F= '$1 == "mode" { print $2 }' "$BOOTSTRAP_STARTED" 2>/dev/null || true)" = migrate ]; then
    bootstrap_finished migrate
    report_bootstrap
  fi
}
# ------------------------------------------------------------------------------
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
RESTORE_KIND=''
RESTORE_ID=''
RESTORE_SHA256=''
RESTORE_UPLOADS_SHA256=''
RESTORED_UPLOADS="$UPLOADS_DIR.restoring"
REPLACED_UPLOADS="$UPLOADS_DIR.replaced"
RESTORE_SOURCE=''
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
RELEASE_UPLOADS=apps/api-server/public/uploads



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
