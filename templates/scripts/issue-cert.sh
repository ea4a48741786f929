#!/usr/bin/env bash
# Stage "tls": obtain (or reuse) the Let's Encrypt certificate for {{ ctx.domain }} through the
# HTTP-01 webroot challenge, report ::o4o::result notAfter=<RFC3339>, then switch nginx to HTTPS.
# Runs after DNS and after the HTTP site serves /.well-known/acme-challenge/.
# Rendered by o4o-operator. Safe to re-run: a certificate valid for 30 more days is reused.
set -euo pipefail
{% include "scripts/_common.sh" %}
{% include "scripts/_nginx.sh" %}

DOMAIN={{ ctx.domain | shquote }}
EMAIL={{ ctx.tls_email | shquote }}
ACME_SERVER={{ ctx.acme_server | shquote }}
WEBROOT="$R"{{ ctx.webroot | shquote }}
LETSENCRYPT_DIR="$R"{{ ctx.letsencrypt_dir | shquote }}
RENEW_BEFORE_DAYS=30
{% if ctx.acme_ca_path %}
# The ACME server's own HTTPS is verified against spec.tls.acmeCABundle, for this request only.
ACME_CA="$R"{{ ctx.acme_ca_path | shquote }}
{% else %}
ACME_CA=""
{% endif %}

report_certificate() {
  local not_after issuer
  not_after="$(openssl x509 -enddate -noout -in "$CERTIFICATE")"
  not_after="${not_after#notAfter=}"
  issuer="$(openssl x509 -issuer -noout -in "$CERTIFICATE")"
  o4o_result notAfter "$(date -u -d "$not_after" +%Y-%m-%dT%H:%M:%SZ)"
  o4o_result issuer "${issuer#issuer=}"
}

# certbot's own words decide the reason; a rate limit must not be hammered.
fail_from_certbot_output() {
  if grep -qiE 'rateLimited|too many (certificates|failed authorizations|new orders)|HTTP 429|status 429' "$1"; then
    o4o_permanent AcmeRateLimited "Let's Encrypt rate limit reached for $DOMAIN; it resets within a week"
  fi
  if grep -qiE 'certificate verify failed|CERTIFICATE_VERIFY_FAILED|unable to get local issuer' "$1"; then
    o4o_permanent AcmeServerUntrusted "certbot could not verify the HTTPS certificate of $ACME_SERVER; for a private ACME CA, set spec.tls.acmeCABundle to the roots of its HTTPS certificate"
  fi
  if grep -qiE 'NXDOMAIN|DNS problem|no valid A records|SERVFAIL' "$1"; then
    o4o_transient AcmeDnsNotResolving "The ACME server cannot resolve $DOMAIN yet"
  fi
  if grep -qiE 'unauthorized|Invalid response from|Timeout during connect|Connection refused|Some challenges have failed' "$1"; then
    o4o_permanent AcmeChallengeFailed "The HTTP-01 challenge for $DOMAIN failed: does $DOMAIN point at this server, with port 80 open?"
  fi
  o4o_transient AcmeRequestFailed "certbot failed for $DOMAIN; see the log"
}

if [ -s "$CERTIFICATE" ] && openssl x509 -checkend $((RENEW_BEFORE_DAYS * 86400)) -noout -in "$CERTIFICATE" >/dev/null 2>&1; then
  o4o_step "Reusing the certificate for $DOMAIN: it is valid for more than $RENEW_BEFORE_DAYS days"
else
  # Asking Let's Encrypt before the name resolves only burns its failed-validation limit.
  getent ahosts "$DOMAIN" >/dev/null 2>&1 ||
    o4o_transient AcmeDnsNotResolving "$DOMAIN does not resolve yet; the certificate is requested once it does"
  install -d -m 0755 "$WEBROOT/.well-known/acme-challenge"
  output="$(mktemp)"
  trap 'rm -f "$output"' EXIT
  certbot_env=()
  if [ -n "$ACME_CA" ]; then
    [ -s "$ACME_CA" ] || o4o_transient ConfigMissing "The ACME CA bundle (spec.tls.acmeCABundle) has not been uploaded yet"
    certbot_env=("REQUESTS_CA_BUNDLE=$ACME_CA")
  fi
  o4o_step "Requesting a certificate for $DOMAIN from $ACME_SERVER"
  if ! env "${certbot_env[@]}" certbot certonly --non-interactive --agree-tos --email="$EMAIL" --server "$ACME_SERVER" \
      --webroot --webroot-path "$WEBROOT" --domain "$DOMAIN" --cert-name "$DOMAIN" \
      --keep-until-expiring --deploy-hook "systemctl reload nginx" \
      --config-dir "$LETSENCRYPT_DIR" --work-dir "$R/var/lib/letsencrypt" --logs-dir "$R/var/log/letsencrypt" \
      2>&1 | tee "$output"; then
    fail_from_certbot_output "$output"
  fi
  [ -s "$CERTIFICATE" ] || o4o_transient AcmeRequestFailed "certbot reported success but $DOMAIN has no certificate"
fi

report_certificate
enable_site https
