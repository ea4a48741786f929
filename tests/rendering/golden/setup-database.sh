#!/usr/bin/env bash
# Stage "database" for team-a.shop. Local (the default): Debian's postgresql package, its cluster on port
# 5432 running with ssl = on (O4O's API forces TLS to a TCP database host under NODE_ENV=production; Debian
# serves it with the snakeoil certificate), and one role and one database for this instance, owned by it
# and closed to every other role. External (spec.database.external): check that the database answers.
# Names and the password arrive in the environment (O4O_DB_*), never in this script; the password reaches
# psql on its stdin or as PGPASSWORD, never on a command line. The connection is checked as the instance's
# user, in exactly the sslMode given (verify-ca and verify-full against the CA uploaded for that user).
# Rendered by o4o-operator. Safe to re-run: every step checks before it acts.
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
# ---- apt: install what is missing, once per script --------------------------------------------
package_installed() {
  # shellcheck disable=SC2016 # ${Status} is dpkg-query's format, not a shell expansion
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

APT_UPDATED=0
apt_get() {
  # A fresh cloud server may still be running its first-boot upgrades: wait for dpkg's lock.
  apt-get -o DPkg::Lock::Timeout=600 "$@"
}

install_missing_packages() {
  local package
  local -a missing=()
  for package in "$@"; do
    package_installed "$package" || missing+=("$package")
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    o4o_step "Already installed: $*"
    return 0
  fi
  if [ "$APT_UPDATED" = 0 ]; then
    apt_get update -qq
    APT_UPDATED=1
  fi
  o4o_step "Installing ${missing[*]}"
  apt_get install -y -qq --no-install-recommends "${missing[@]}"
}
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

# check_database: the instance's own user and role reach its database (role_psql, in _database.sh) in exactly
# the sslMode given: verify-ca and verify-full against the CA the operator uploaded for that user alone
# (O4O_DB_SSLROOTCERT; without it they stall naming spec.database.external.caSecretRef).
if [ -n "$DB_SSLROOTCERT" ]; then
  [ -f "$R$DB_SSLROOTCERT" ] ||
    o4o_transient DatabaseCaMissing "The database's CA has not been uploaded to $DB_SSLROOTCERT yet"
else
  case "$DB_SSLMODE" in
    verify-ca | verify-full)
      o4o_permanent DatabaseCaMissing "spec.database.external.caSecretRef: sslmode $DB_SSLMODE verifies the server's certificate, and the operator passed no CA (O4O_DB_SSLROOTCERT)" ;;
  esac
fi
check_database() {
  local answer
  if answer="$(role_psql -tA -c 'SELECT 1' 2>&1)"; then
    [ "$answer" = 1 ] && return 0
  fi
  o4o_transient DatabaseUnavailable "Role $DB_USER could not reach database $DB_NAME at $DB_HOST:$DB_PORT (sslmode $DB_SSLMODE): ${answer:-no answer}"
}

# create_extensions <psql command...>: spec.database.extensions, each created if missing, in the instance's
# database (the names are checked by the CRD and the models: [a-z0-9_-], safe inside double quotes).
create_extensions() {
  local extension index=0 answer
  # shellcheck disable=SC2086 # a space-separated list of plain names
  for extension in ${DB_EXTENSIONS:-}; do
    if ! answer="$("$@" -c "CREATE EXTENSION IF NOT EXISTS \"$extension\"" 2>&1)"; then
      o4o_permanent DatabaseSetupFailed "spec.database.extensions[$index]: $extension could not be created in $DB_NAME: $answer"
    fi
    index=$((index + 1))
  done
  [ -z "${DB_EXTENSIONS:-}" ] || o4o_step "Extensions in $DB_NAME: $DB_EXTENSIONS"
}

if [ "$DB_MODE" = external ]; then
  install_missing_packages postgresql-client
  o4o_step "Checking the external database $DB_NAME at $DB_HOST:$DB_PORT"
  check_database
  create_extensions role_psql
  o4o_result database "external $DB_NAME at $DB_HOST:$DB_PORT (sslmode $DB_SSLMODE)"
  exit 0
fi

# Local: the names are plain PostgreSQL identifiers (the operator derives them from the instance's user).
for identifier in "$DB_NAME" "$DB_USER"; do
  case "$identifier" in
    "" | [!a-z_]* | *[!a-z0-9_]*)
      o4o_permanent DatabaseSetupFailed "'$identifier' is not a plain PostgreSQL identifier" ;;
  esac
done

install_missing_packages postgresql

as_postgres() { (cd / && runuser -u postgres -- "$@"); }
psql_admin() { as_postgres psql -X -q -v ON_ERROR_STOP=1 -tA "$@"; }

# The cluster on port 5432 (Debian makes one when the package is installed): "<version> <name> <status>".
clusters="$(pg_lsclusters --no-header 2>/dev/null || true)"
cluster="$(awk -v port="$DB_PORT" '$3 == port { print $1, $2, $4; exit }' <<< "$clusters")"
[ -n "$cluster" ] ||
  o4o_permanent DatabaseSetupFailed "No PostgreSQL cluster listens on port $DB_PORT (pg_lsclusters); create one with pg_createcluster --port $DB_PORT"
read -r pg_version pg_cluster pg_status <<< "$cluster"
if [ "$pg_status" != online ]; then
  o4o_step "Starting PostgreSQL $pg_version/$pg_cluster"
  pg_ctlcluster "$pg_version" "$pg_cluster" start ||
    o4o_transient DatabaseUnavailable "PostgreSQL $pg_version/$pg_cluster did not start"
fi

if [ "$(psql_admin -c 'SHOW ssl')" != on ]; then
  o4o_step "Turning ssl on in PostgreSQL $pg_version/$pg_cluster"
  psql_admin -c 'ALTER SYSTEM SET ssl = on' >/dev/null
  psql_admin -c 'SELECT pg_reload_conf()' >/dev/null
  [ "$(psql_admin -c 'SHOW ssl')" = on ] ||
    o4o_permanent DatabaseSetupFailed "PostgreSQL $pg_version/$pg_cluster will not turn ssl on (does ssl_cert_file exist?)"
fi

if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$DB_USER'")" = 1 ]; then
  o4o_step "Role $DB_USER exists; setting its password"
else
  o4o_step "Creating role $DB_USER"
fi
# On stdin, so that the password never appears on a command line; quotes doubled for SQL.
password_sql="${O4O_DB_PASSWORD//\'/\'\'}"
printf '%s\n' \
  "DO \$o4o\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$DB_USER') THEN CREATE ROLE $DB_USER LOGIN; END IF; END \$o4o\$;" \
  "ALTER ROLE $DB_USER WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '$password_sql';" |
  psql_admin >/dev/null ||
  o4o_transient DatabaseSetupFailed "Could not create or update role $DB_USER"

if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" = 1 ]; then
  o4o_step "Database $DB_NAME exists"
else
  o4o_step "Creating database $DB_NAME owned by $DB_USER"
  psql_admin -c "CREATE DATABASE $DB_NAME OWNER $DB_USER" >/dev/null ||
    o4o_transient DatabaseSetupFailed "Could not create database $DB_NAME"
fi
# Instances may share a host: only this instance's role may connect to its database.
psql_admin -c "ALTER DATABASE $DB_NAME OWNER TO $DB_USER" \
  -c "REVOKE CONNECT, TEMPORARY ON DATABASE $DB_NAME FROM PUBLIC" \
  -c "GRANT CONNECT, TEMPORARY ON DATABASE $DB_NAME TO $DB_USER" >/dev/null ||
  o4o_transient DatabaseSetupFailed "Could not set the owner and privileges of database $DB_NAME"

create_extensions psql_admin -d "$DB_NAME"

o4o_step "Checking that $DB_USER reaches $DB_NAME over TLS at $DB_HOST:$DB_PORT"
check_database
# Root's record of what this instance owns in PostgreSQL (names only), for whoever cleans up the host.
install -d -m 0700 "$DB_STATE_DIR"
printf 'cluster=%s/%s\nrole=%s\ndatabase=%s\n' "$pg_version" "$pg_cluster" "$DB_USER" "$DB_NAME" > "$DB_RECORD"
o4o_result database "PostgreSQL $pg_version/$pg_cluster, database $DB_NAME at $DB_HOST:$DB_PORT"
