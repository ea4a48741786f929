# ---- health: does the site answer 200 through nginx, as a visitor arrives? -------
HEALTH_DOMAIN={{ ctx.domain | shquote }}
HEALTH_PATHS=(/ {{ ctx.health_path | shquote }})
HEALTH_CERTIFICATE="$R"{{ ctx.certificate_path | shquote }}
{% if ctx.certificate_ca_path %}
HEALTH_CA="$R"{{ ctx.certificate_ca_path | shquote }}
{% else %}
HEALTH_CA=""
{% endif %}
if [ -n "$HEALTH_CA" ] && [ ! -s "$HEALTH_CA" ]; then
  o4o_transient ConfigMissing "The certificate CA bundle (spec.tls.certificateCABundle) has not been uploaded yet"
fi

# health_probe PATH prints "<status> <url>[ (<curl's error>)]", status 000 when nothing answered.
# Once the certificate exists: HTTPS to the domain itself (resolved to this server), verified against
# spec.tls.certificateCABundle when given, else the system roots. Before: HTTP with the Host header.
# Redirects are not followed: a 301 to HTTPS is not a healthy site.
health_probe() {
  local url output code detail
  local -a how=(--max-time 10 --noproxy '*')  # this server itself: never through the login's proxy
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

# health_check_once prints one "HTTP <status> <url>" line per path; it succeeds when every one is 200.
health_check_once() {
  local path line status=0
  for path in "${HEALTH_PATHS[@]}"; do
    line="$(health_probe "$path")"
    printf 'HTTP %s\n' "$line"
    [ "${line%% *}" = 200 ] || status=1
  done
  # Issue 12: the API health path's body (its database status) is to be read here as well.
  return "$status"
}
# ------------------------------------------------------------------------------
