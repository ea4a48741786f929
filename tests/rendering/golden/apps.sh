#!/usr/bin/env bash
# Stage "apps" of shop, its host part: create the operator's admin account once, and report
# root's record of the apps this operator installed and the post-install steps it ran. The operator then logs
# in as that admin and installs, activates, deactivates and uninstalls apps through the instance's own API
# (forum-core, signage), and runs the declared post-install steps
# (none), recording each with apps-ledger.
# Rendered by o4o-operator. The admin credentials come only from the environment (O4O_ADMIN_EMAIL,
# O4O_ADMIN_PASSWORD).
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
# ---- the apps stage's host things, rendered by o4o-operator -------------------
# The instance's own API is spoken by the operator (through an SSH tunnel), not here. What stays on the host:
# commands run as the app user with the .env loaded, and root's record of what the stage did.
CURRENT="$R"/srv/o4o/team-a.shop/current
API_DIR="$CURRENT"/apps/api-server
ENV_FILE="$R"/srv/o4o/team-a.shop/shared/.env
# Root's own record (admin created, apps it installed, steps run): in the root-owned state directory.
APPS_STATE="$R"/var/lib/o4o/instances/team-a.shop/apps
# Run a command as the app user with the instance's .env loaded (by Node's own --env-file parser, as PM2
# starts the API); 127 when the program does not exist.
O4O_EXEC_JS='const [c, ...a] = process.argv.slice(1);
const r = require("child_process").spawnSync(c, a, {stdio: "inherit"});
if (r.error) { process.exit(r.error.code === "ENOENT" ? 127 : 126); }
process.exit(r.status === null ? 1 : r.status);'
o4o_with_env() { as_app node --env-file="$ENV_FILE" -e "$O4O_EXEC_JS" -- "$@"; }
# Lines from stdin with the credentials blanked out.
o4o_redacted() {
  local line
  while IFS= read -r line || [ -n "$line" ]; do
    line=${line//"$O4O_ADMIN_PASSWORD"/[redacted]}
    line=${line//"$O4O_ADMIN_EMAIL"/[redacted]}
    printf '%s\n' "$line"
  done
}
[ -d "$API_DIR/" ] || o4o_transient ReleaseNotActive "No release is active yet; apps are installed through its API"
if [ -z "${O4O_ADMIN_EMAIL:-}" ] || [ -z "${O4O_ADMIN_PASSWORD:-}" ]; then
  o4o_transient AdminCredentialsMissing "The admin credentials (Secret shop-database) did not reach the script"
fi
install -d -m 0700 "$APPS_STATE" "$APPS_STATE/apps" "$APPS_STATE/post-install"
WORK=$(mktemp -d "$APPS_STATE/.work.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
# ------------------------------------------------------------------------------

# ---- the admin account, once per instance (spec.build.api.adminCommand) ----------------------------------
if [ -f "$APPS_STATE"/admin.28c96605395217bd ]; then
  o4o_step "The operator's admin account exists"
else
  o4o_step "Creating the operator's admin account (spec.build.api.adminCommand)"
  # Its output is kept back (O4O's script prints the password it set); only a redacted tail on failure.
  status=0
  (cd "$API_DIR" && o4o_with_env 'npx' 'tsx' 'src/scripts/create-admin-user.ts' '--email='"${O4O_ADMIN_EMAIL}" '--password='"${O4O_ADMIN_PASSWORD}") > "$WORK/admin.log" 2>&1 || status=$?
  if [ "$status" -ne 0 ]; then
    tail -n 20 "$WORK/admin.log" | o4o_redacted
    if [ "$status" -eq 127 ]; then
      o4o_permanent AdminCreateFailed "spec.build.api.adminCommand: command not found: "npx
    fi
    o4o_transient AdminCreateFailed "spec.build.api.adminCommand exited with status $status; see the log"
  fi
  date -u +%Y-%m-%dT%H:%M:%SZ > "$APPS_STATE"/admin.28c96605395217bd
fi

# ---- root's record: apps this operator installed, post-install steps it ran ---------------------------
o4o_result recordedApps "$(find "$APPS_STATE/apps" -mindepth 1 -maxdepth 1 -type f -printf '%f\n' | sort | paste -sd, -)"
o4o_result stepsRun "$(find "$APPS_STATE/post-install" -mindepth 1 -maxdepth 1 -type f -printf '%f\n' | sort | paste -sd, -)"
