#!/usr/bin/env bash
# The health probe for shop: do / and /api/health answer exactly 200 through nginx,
# over HTTPS once the certificate exists, and did the operator find the API's body healthy (spec.build.health)?
# Run by the drift check, and by activation once per attempt (O4O_HEALTH_ATTEMPT="<n>/<of>": its lines go
# into the release's activation log too). Rendered by o4o-operator. Changes nothing else.
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
# The status codes are probed here, through nginx (TLS, the site, the proxy to the API: the whole path).
# What the API's body says (spec.build.health) is fetched and judged by the operator through its tunnel to
# the API's port; it hands the verdict in: O4O_HEALTH_BODY_OK=1 when the body said healthy, and
# O4O_HEALTH_SAID, the words shown beside the API path's line.
HEALTH_DOMAIN=shop.example.com
HEALTH_PATHS=(/ /api/health)
HEALTH_CERTIFICATE="$R"/etc/letsencrypt/live/shop.example.com/fullchain.pem
HEALTH_CA=""
if [ -n "$HEALTH_CA" ] && [ ! -s "$HEALTH_CA" ]; then
  o4o_transient ConfigMissing "The certificate CA bundle (spec.tls.certificateCABundle) has not been uploaded yet"
fi
HEALTH_API_PATH=/api/health
HEALTH_BODY_OK="${O4O_HEALTH_BODY_OK:-0}"
HEALTH_SAID="${O4O_HEALTH_SAID:-the operator did not judge the body}"

# health_probe PATH prints "<status> <url>[ (<curl's error>)]", status 000 when nothing answered.
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
  output="$(curl -sS -o /dev/null -w '\n%{http_code}\n' "${how[@]}" "$url" 2>&1 || true)"
  code="$(printf '%s\n' "$output" | grep -E '^[0-9]{3}$' | tail -n 1 || true)"
  detail="$(printf '%s\n' "$output" | grep -vE '^([0-9]{3})?$' | head -n 1 || true)"
  printf '%s %s%s\n' "${code:-000}" "$url" "${detail:+ ($detail)}"
}

# health_check_once prints one "HTTP <status> <url>[ <what the body said>]" line per path; it succeeds when
# every one is 200 and the operator found the API's body healthy.
health_check_once() {
  local path line status=0
  for path in "${HEALTH_PATHS[@]}"; do
    line="$(health_probe "$path")"
    if [ "${line%% *}" != 200 ]; then
      status=1
    elif [ "$path" = "$HEALTH_API_PATH" ]; then
      [ "$HEALTH_BODY_OK" = 1 ] || status=1
      line="$line${HEALTH_SAID:+ $HEALTH_SAID}"
    fi
    printf 'HTTP %s\n' "$line"
  done
  return "$status"
}
# ------------------------------------------------------------------------------
ACTIVATION_LOG="$R"/var/lib/o4o/instances/team-a.shop/activations/0123456789abcdef0123456789abcdef01234567.log

healthy=1
report="$(health_check_once)" || healthy=0
if [ -n "${O4O_HEALTH_ATTEMPT:-}" ] && [ -n "$ACTIVATION_LOG" ] && [ -d "${ACTIVATION_LOG%/*}" ]; then
  stamp="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  while IFS= read -r line; do
    printf '%s attempt %s: %s\n' "$stamp" "$O4O_HEALTH_ATTEMPT" "$line"
  done <<< "$report" | tee -a "$ACTIVATION_LOG"
else
  printf '%s\n' "$report"
fi
if [ "$healthy" = 1 ]; then
  o4o_result health ok
else
  o4o_transient HealthCheckFailed "$HEALTH_DOMAIN did not answer 200 for every health path, or its health body did not say healthy"
fi
