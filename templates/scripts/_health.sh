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

# What the API's health path must say beside its 200 (spec.build.health): the dotted field of its JSON body
# and the value it must hold; an empty field leaves the status code alone to decide.
HEALTH_API_PATH={{ ctx.health_path | shquote }}
HEALTH_BODY_FIELD={{ ctx.health_body_field | shquote }}
HEALTH_EXPECT={{ ctx.health_expect | shquote }}
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
