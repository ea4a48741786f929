#!/usr/bin/env bash
# Before configure for team-a.shop: what the operator needs to decide whether the database is bootstrapped
# (pipeline/bootstrap.py). It reports, and changes nothing: the number of tables in the application's
# schemas, the migrations table if there is one, root's records of a finished or a begun bootstrap, and the
# server's server_version_num (a restore's dump must be of the same major version).
# Rendered by o4o-operator. The password arrives in the environment (O4O_DB_PASSWORD), never in this script.
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

[ -n "${O4O_DB_PASSWORD:-}" ] ||
  o4o_permanent DatabasePasswordMissing "The operator passed no database password (O4O_DB_PASSWORD)"
if ! answer="$(database_tables 2>&1)" || [[ ! "$answer" =~ ^[0-9]+\| ]]; then
  o4o_transient DatabaseUnavailable "Role $DB_USER could not list the tables of $DB_NAME at $DB_HOST:$DB_PORT: ${answer:-no answer}"
fi
o4o_result tables "${answer%%|*}"
o4o_result migrationsTable "${answer#*|}"
o4o_result bootstrapped "$(bootstrap_record_line)"
started=""
[ ! -s "$BOOTSTRAP_STARTED" ] || started="$(awk -F= '$1 == "mode" { print $2 }' "$BOOTSTRAP_STARTED")"
o4o_result bootstrapStarted "$started"
o4o_result postgresVersion "$(role_psql -tA -c 'SHOW server_version_num' 2>/dev/null || true)"
