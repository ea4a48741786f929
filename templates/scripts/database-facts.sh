#!/usr/bin/env bash
# Before configure for {{ ctx.slug }}: what the operator needs to decide whether the database is bootstrapped
# (pipeline/bootstrap.py). It reports, and changes nothing: the number of tables in the application's
# schemas, the migrations table if there is one, root's records of a finished or a begun bootstrap, and the
# server's server_version_num (a restore's dump must be of the same major version).
# Rendered by o4o-operator. The password arrives in the environment (O4O_DB_PASSWORD), never in this script.
set -euo pipefail
{% include "scripts/_common.sh" %}
{% include "scripts/_database.sh" %}

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
