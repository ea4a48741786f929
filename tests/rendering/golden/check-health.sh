#!/usr/bin/env bash
# The drift check's health probe for shop: do / and /api/health answer exactly 200
# through nginx, over HTTPS once the certificate exists, and does the API's body say it works
# (spec.build.health)? Rendered by o4o-operator. Changes nothing.
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
# ---- health: does the site answer 200 through nginx, as a visitor arrives? -------
HEALTH_DOMAIN=shop.example.com
HEALTH_PATHS=(/ /api/health)
HEALTH_CERTIFICATE="$R"/etc/letsencrypt/live/shop.example.com/fullchain.pem
HEALTH_CA=""
if [ -n "$HEALTH_CA" ] && [ ! -s "$HEALTH_CA" ]; then
  o4o_transient ConfigMissing "The certificate CA bundle (spec.tls.certificateCABundle) has not been uploaded yet"
fi

# What the API's health path must say beside its 200 (spec.build.health): the dotted field of its JSON body
# and the value it must hold; an empty field leaves the status code alone to decide.
HEALTH_API_PATH=/api/health
HEALTH_BODY_FIELD=database.status
HEALTH_EXPECT=healthy
# Reads the body on stdin with this server's own Node.js; prints "<field>=<value>[, expected <value>]".
HEALTH_BODY_CHECK="$(cat <<'JS'
const [field, expected] = process.argv.slice(1);
let text = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => { text += chunk; });
process.stdin.on('end', () => {
  let value;
  try {
    value = field.split('.').reduce((at, key) => (at !== null && typeof at === 'object' ? at[key] : undefined),
                                    JSON.parse(text));
  } catch (error) {
    console.log(`the body is not JSON, expected ${field}=${expected}`);
    process.exit(1);
  }
  const shown = value === undefined ? '(absent)' : (typeof value === 'string' ? value : JSON.stringify(value));
  const ok = value === expected;
  console.log(`${field}=${String(shown).slice(0, 80)}${ok ? '' : `, expected ${expected}`}`);
  process.exit(ok ? 0 : 1);
});
JS
)"

# health_probe PATH [BODY_FILE] prints "<status> <url>[ (<curl's error>)]", status 000 when nothing answered;
# with BODY_FILE, the body is kept there.
# Once the certificate exists: HTTPS to the domain itself (resolved to this server), verified against
# spec.tls.certificateCABundle when given, else the system roots. Before: HTTP with the Host header.
# Redirects are not followed: a 301 to HTTPS is not a healthy site.
health_probe() {
  local url output code detail
  local -a how=(--max-time 10 --max-filesize 1048576 --noproxy '*')  # never through the login's proxy
  if [ -s "$HEALTH_CERTIFICATE" ]; then
    url="https://$HEALTH_DOMAIN$1"
    how+=(--resolve "$HEALTH_DOMAIN:443:127.0.0.1")
    if [ -n "$HEALTH_CA" ]; then how+=(--cacert "$HEALTH_CA"); fi
  else
    url="http://127.0.0.1$1"
    how+=(-H "Host: $HEALTH_DOMAIN")
  fi
  output="$(curl -sS -o "${2:-/dev/null}" -w '\n%{http_code}\n' "${how[@]}" "$url" 2>&1 || true)"
  code="$(printf '%s\n' "$output" | grep -E '^[0-9]{3}$' | tail -n 1 || true)"
  detail="$(printf '%s\n' "$output" | grep -vE '^([0-9]{3})?$' | head -n 1 || true)"
  printf '%s %s%s\n' "${code:-000}" "$url" "${detail:+ ($detail)}"
}

# health_body_check FILE prints what the body's field says; it succeeds when that is HEALTH_EXPECT.
health_body_check() {
  node -e "$HEALTH_BODY_CHECK" -- "$HEALTH_BODY_FIELD" "$HEALTH_EXPECT" < "$1" 2>&1 ||
    return 1
}

# health_check_once prints one "HTTP <status> <url>[ <field>=<value>...]" line per path; it succeeds when
# every one is 200 and the API's body says HEALTH_EXPECT.
health_check_once() {
  local path line body said status=0
  body="$(mktemp)"
  for path in "${HEALTH_PATHS[@]}"; do
    : > "$body"
    line="$(health_probe "$path" "$body")"
    if [ "${line%% *}" != 200 ]; then
      status=1
    elif [ "$path" = "$HEALTH_API_PATH" ] && [ -n "$HEALTH_BODY_FIELD" ]; then
      said="$(health_body_check "$body" | head -n 1)" || status=1
      [ -n "$said" ] || said="the body could not be read"
      line="$line $said"
    fi
    printf 'HTTP %s\n' "$line"
  done
  rm -f "$body"
  return "$status"
}
# ------------------------------------------------------------------------------

if health_check_once; then
  o4o_result health ok
else
  o4o_transient HealthCheckFailed "$HEALTH_DOMAIN did not answer 200 for every health path, or its health body did not say healthy"
fi
