# ---- the apps stage's host things, rendered by o4o-operator -------------------
# The instance's own API is spoken by the operator (through an SSH tunnel), not here. What stays on the host:
# commands run as the app user with the .env loaded, and root's record of what the stage did.
CURRENT="$R"{{ ctx.current_link | shquote }}
API_DIR="$CURRENT"/{{ ctx.api_dir | shquote }}
ENV_FILE="$R"{{ ctx.env_path | shquote }}
# Root's own record (admin created, apps it installed, steps run): in the root-owned state directory.
APPS_STATE="$R"{{ ctx.apps_state_dir | shquote }}
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
  o4o_transient AdminCredentialsMissing "The admin credentials (Secret {{ ctx.instance_name }}-database) did not reach the script"
fi
install -d -m 0700 "$APPS_STATE" "$APPS_STATE/apps" "$APPS_STATE/post-install"
WORK=$(mktemp -d "$APPS_STATE/.work.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
# ------------------------------------------------------------------------------
