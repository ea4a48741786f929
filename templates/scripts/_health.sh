# ---- health: does the site answer 200 through nginx, as a visitor arrives? -------
# The status codes are probed here, through nginx (TLS, the site, the proxy to the API: the whole path).
# What the API's body says (spec.build.health) is fetched and judged by the operator through its tunnel to
# the API's port; it hands the verdict in: O4O_HEALTH_BODY_OK=1 when the body said healthy, and
# O4O_HEALTH_SAID, the words shown beside the API path's line.
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
HEALTH_API_PATH={{ ctx.health_path | shquote }}
{% if ctx.health_body_field %}
HEALTH_BODY_OK="${O4O_HEALTH_BODY_OK:-0}"
HEALTH_SAID="${O4O_HEALTH_SAID:-the operator did not judge the body}"
{% else %}
# No body field: the status codes alone decide.
HEALTH_BODY_OK=1
HEALTH_SAID=""
{% endif %}

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
