#!/usr/bin/env bash
# Stage "apps" of shop, through the instance's own API: create the operator's admin account
# once, log in, install and activate the wanted apps (forum-core, signage), deactivate and
# uninstall the ones this operator installed that are no longer wanted, then run the declared post-install
# steps (none) once each. Rendered by o4o-operator.
# The admin credentials come only from the environment (O4O_ADMIN_EMAIL, O4O_ADMIN_PASSWORD).
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
# ---- the instance's own API, rendered by o4o-operator -----------------------
# Talks to the API on 127.0.0.1 directly (never through a proxy); parses JSON with the server's node.
# The admin credentials (O4O_ADMIN_EMAIL, O4O_ADMIN_PASSWORD) and the token never appear in argv here:
# the login body is written by node from the environment, the token header is read by curl from a file.
API=http://127.0.0.1:3001
ENV_FILE="$R"/srv/o4o/team-a.shop/shared/.env
TOKEN=""
# Run a command as the app user with the instance's .env loaded (by Node's own --env-file parser, as PM2
# starts the API); 127 when the program does not exist.
O4O_EXEC_JS='const [c, ...a] = process.argv.slice(1);
const r = require("child_process").spawnSync(c, a, {stdio: "inherit"});
if (r.error) { process.exit(r.error.code === "ENOENT" ? 127 : 126); }
process.exit(r.status === null ? 1 : r.status);'
o4o_with_env() { as_app node --env-file="$ENV_FILE" -e "$O4O_EXEC_JS" -- "$@"; }
# What node reads from a response on stdin: token | market | installed | message.
O4O_JSON_JS='let s = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (d) => { s += d; });
process.stdin.on("end", () => {
  let j = null;
  try { j = JSON.parse(s); } catch (e) { j = null; }
  const mode = process.argv[1];
  const out = (t) => process.stdout.write(t);
  const apps = j && (Array.isArray(j.apps) ? j.apps : (j.data && Array.isArray(j.data.apps) ? j.data.apps : null));
  if (mode === "token") {
    const t = j && j.data && j.data.tokens && j.data.tokens.accessToken;
    if (typeof t !== "string" || t === "") { process.exit(3); }
    out(t);
  } else if (mode === "market" || mode === "installed") {
    if (!apps) { process.exit(3); }
    for (const a of apps) {
      if (!a || typeof a.appId !== "string" || !/^[a-z0-9][a-z0-9-]*$/.test(a.appId)) { continue; }
      out(mode === "market" ? a.appId + "\n" : a.appId + " " + String(a.status || "unknown") + "\n");
    }
  } else {
    let m = j && (j.message || (j.error && typeof j.error === "object" ? j.error.message : j.error));
    if (typeof m !== "string" || m === "") { m = s; }
    out(m.replace(/[\x00-\x1f\x7f]+/g, " ").trim().slice(0, 300));
  }
});'
O4O_LOGIN_JS='process.stdout.write(JSON.stringify({email: process.env.O4O_ADMIN_EMAIL,
  password: process.env.O4O_ADMIN_PASSWORD, includeLegacyTokens: true}));'
o4o_json() { node -e "$O4O_JSON_JS" -- "$1" < "$WORK/response"; }
# Lines from stdin with the credentials and the token blanked out.
o4o_redacted() {
  local line
  while IFS= read -r line || [ -n "$line" ]; do
    line=${line//"$O4O_ADMIN_PASSWORD"/[redacted]}
    line=${line//"$O4O_ADMIN_EMAIL"/[redacted]}
    if [ -n "$TOKEN" ]; then line=${line//"$TOKEN"/[redacted]}; fi
    printf '%s\n' "$line"
  done
}
# o4o_api METHOD PATH [BODY-FILE]: the answer's body in $WORK/response, its status in API_STATUS.
o4o_api() {
  local args=(--noproxy '*' -sS --max-time 120 -X "$1" -o "$WORK/response" -w '%{http_code}')
  if [ -n "$TOKEN" ]; then args+=(-H "@$WORK/auth-header"); fi
  if [ -n "${3:-}" ]; then args+=(-H 'Content-Type: application/json' --data-binary "@$3"); fi
  : > "$WORK/response"
  API_STATUS=$(curl "${args[@]}" "$API$2" 2>"$WORK/curl.err") ||
    o4o_transient AppsApiUnavailable "The instance's API on $API did not answer $1 $2: $(head -c 300 "$WORK/curl.err")"
}
# The instance's own words for the last answer, bounded and redacted.
o4o_words() {
  local words
  words=$(o4o_json message | o4o_redacted)
  printf '%s' "${words:0:300}"
}
# After a call: 2xx returns; a lost session or an unavailable API is worth retrying.
o4o_api_ok() {
  case "$API_STATUS" in
    2??) return 0 ;;
    401|403) o4o_transient AdminLoginFailed "$1: the instance refused the operator's admin (HTTP $API_STATUS): $(o4o_words)" ;;
    000|502|503|504) o4o_transient AppsApiUnavailable "$1: the instance's API is unavailable (HTTP $API_STATUS)" ;;
  esac
  return 1
}
o4o_login() {
  o4o_step "Logging in to the instance's API as the operator's admin account"
  o4o_api POST /api/v1/auth/login <(node -e "$O4O_LOGIN_JS")
  case "$API_STATUS" in
    2??) ;;
    000|502|503|504) o4o_transient AppsApiUnavailable "Logging in: the instance's API is unavailable (HTTP $API_STATUS)" ;;
    *) o4o_transient AdminLoginFailed "The instance refused the operator's admin login (HTTP $API_STATUS): $(o4o_words)" ;;
  esac
  TOKEN=$(o4o_json token) || o4o_transient AdminLoginFailed "The instance's login answer carried no data.tokens.accessToken"
  printf 'Authorization: Bearer %s\n' "$TOKEN" > "$WORK/auth-header"
}
o4o_list_apps() {
  o4o_api GET /api/v1/admin/apps
  o4o_api_ok "Listing the installed apps" ||
    o4o_transient AppsApiUnavailable "Listing the installed apps answered HTTP $API_STATUS: $(o4o_words)"
  INSTALLED=$(o4o_json installed) || o4o_transient AppsApiUnavailable "GET /api/v1/admin/apps answered no apps list"
}
o4o_app_state() { awk -v id="$1" '$1 == id { print $2; exit }' <<< "$INSTALLED"; }
# o4o_app_call ACTION ID FIELD: POST /api/v1/admin/apps/ACTION {"appId": ID}; a refusal stalls.
o4o_app_call() {
  printf '{"appId":"%s"}' "$2" > "$WORK/body"
  o4o_api POST "/api/v1/admin/apps/$1" "$WORK/body"
  o4o_api_ok "$3" || o4o_permanent AppRefused "$3: the instance refused to $1 app $2 (HTTP $API_STATUS): $(o4o_words)"
}
# ------------------------------------------------------------------------------
CURRENT="$R"/srv/o4o/team-a.shop/current
API_DIR="$CURRENT"/apps/api-server
# Root's own record (admin created, apps it installed, steps run): in the root-owned state directory.
APPS_STATE="$R"/var/lib/o4o/instances/team-a.shop/apps

[ -d "$API_DIR/" ] || o4o_transient ReleaseNotActive "No release is active yet; apps are installed through its API"
if [ -z "${O4O_ADMIN_EMAIL:-}" ] || [ -z "${O4O_ADMIN_PASSWORD:-}" ]; then
  o4o_transient AdminCredentialsMissing "The admin credentials (Secret shop-database) did not reach the script"
fi
install -d -m 0700 "$APPS_STATE" "$APPS_STATE/apps" "$APPS_STATE/post-install"
WORK=$(mktemp -d "$APPS_STATE/.work.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

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

o4o_login
o4o_api GET /api/v1/admin/apps/market
o4o_api_ok "Listing the instance's apps" ||
  o4o_transient AppsApiUnavailable "GET /api/v1/admin/apps/market answered HTTP $API_STATUS: $(o4o_words)"
MARKET=$(o4o_json market) || o4o_transient AppsApiUnavailable "GET /api/v1/admin/apps/market answered no apps list"
LISTED=$(paste -sd, - <<< "$MARKET" | sed 's/,/, /g')
LISTED=${LISTED:0:300}
o4o_list_apps

# ---- every wanted app must be one the instance lists, before anything changes ------------------------------
grep -qxF forum-core <<< "$MARKET" ||
  o4o_permanent UnknownApp 'spec.apps[0]: the instance lists no app named forum-core; it lists: '"${LISTED:-nothing}"
grep -qxF signage <<< "$MARKET" ||
  o4o_permanent UnknownApp 'spec.apps[1]: the instance lists no app named signage; it lists: '"${LISTED:-nothing}"

ADDED=()
REMOVED=()
# ---- apps this operator installed that are no longer wanted: deactivate, then uninstall -------------------
WANTED=(forum-core signage)
for marker in "$APPS_STATE"/apps/*; do
  [ -f "$marker" ] || continue
  app=${marker##*/}
  wanted=no
  for want in "${WANTED[@]}"; do [ "$want" = "$app" ] && wanted=yes; done
  [ "$wanted" = no ] || continue
  state=$(o4o_app_state "$app")
  if [ "$state" = active ]; then
    o4o_step "Deactivating app $app (no longer in spec.apps)"
    o4o_app_call deactivate "$app" "spec.apps (removed $app)"
  fi
  if [ -n "$state" ]; then
    o4o_step "Uninstalling app $app (its data is kept)"
    o4o_app_call uninstall "$app" "spec.apps (removed $app)"
  fi
  rm -f "$marker"
  REMOVED+=("$app")
done

# ---- wanted apps that are not active: install if absent, then activate ----------------------------------
state=$(o4o_app_state forum-core)
if [ "$state" = active ]; then
  o4o_step 'App forum-core is active'
else
  if [ -z "$state" ]; then
    o4o_step 'Installing app forum-core'
    o4o_app_call install forum-core 'spec.apps[0]'
  fi
  o4o_step 'Activating app forum-core'
  o4o_app_call activate forum-core 'spec.apps[0]'
  ADDED+=(forum-core)
fi
date -u +%Y-%m-%dT%H:%M:%SZ > "$APPS_STATE"/apps/forum-core
state=$(o4o_app_state signage)
if [ "$state" = active ]; then
  o4o_step 'App signage is active'
else
  if [ -z "$state" ]; then
    o4o_step 'Installing app signage'
    o4o_app_call install signage 'spec.apps[1]'
  fi
  o4o_step 'Activating app signage'
  o4o_app_call activate signage 'spec.apps[1]'
  ADDED+=(signage)
fi
date -u +%Y-%m-%dT%H:%M:%SZ > "$APPS_STATE"/apps/signage

# ---- declared post-install steps (spec.postInstall), once each -----------------------------------------

o4o_list_apps
ACTIVE=$(awk '$2 == "active" { print $1 }' <<< "$INSTALLED" | sort | paste -sd, -)
o4o_result installed "$ACTIVE"
o4o_result added "$(IFS=,; printf '%s' "${ADDED[*]}")"
o4o_result removed "$(IFS=,; printf '%s' "${REMOVED[*]}")"
