# ---- the instance's database, as its own role (O4O_DB_* from the environment) -
# Each script uses some of these (one declaration, so that one directive covers them all).
# shellcheck disable=SC2034
declare DB_MODE="${O4O_DB_MODE:-local}" DB_HOST="${O4O_DB_HOST:-127.0.0.1}" DB_PORT="${O4O_DB_PORT:-5432}" \
  DB_NAME="${O4O_DB_NAME:-}" DB_USER="${O4O_DB_USER:-}" DB_SSLMODE="${O4O_DB_SSLMODE:-require}" \
  DB_EXTENSIONS="${O4O_DB_EXTENSIONS:-}" DB_SSLROOTCERT="${O4O_DB_SSLROOTCERT:-}" \
  DB_STATE_DIR="$R"{{ ctx.state_dir | shquote }} \
  DB_RECORD="$R"{{ (ctx.state_dir ~ "/database") | shquote }} \
  BOOTSTRAP_RECORD="$R"{{ (ctx.state_dir ~ "/bootstrap") | shquote }} \
  BOOTSTRAP_STARTED="$R"{{ (ctx.state_dir ~ "/bootstrap.started") | shquote }}
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
