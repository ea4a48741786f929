# ---- the instance's own API, rendered by o4o-operator -----------------------
# Talks to the API on 127.0.0.1 directly (never through a proxy); parses JSON with the server's node.
# The admin credentials (O4O_ADMIN_EMAIL, O4O_ADMIN_PASSWORD) and the token never appear in argv here:
# the login body is written by node from the environment, the token header is read by curl from a file.
API={{ ("http://127.0.0.1:" ~ ctx.api_port) | shquote }}
ENV_FILE="$R"{{ ctx.env_path | shquote }}
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
