#!/usr/bin/env bash
# Stage "tls": obtain (or reuse) the Let's Encrypt certificate for {{ ctx.domain }} through the
# HTTP-01 webroot challenge, report ::o4o::result notAfter=<RFC3339>, issuer=<DN> and server=<the
# ACME server that issued it>, then switch nginx to HTTPS.
# Runs after DNS and after the HTTP site serves /.well-known/acme-challenge/.
# Rendered by o4o-operator. Safe to re-run: a certificate valid for 30 more days is reused, if the
# ACME server that issued it is spec.tls.server. certbot records that server in the lineage's
# renewal configuration (renewal/<name>.conf, "server = ..."), beside the certificate; one from
# another server (staging, then production) is issued again with --force-renewal, because certbot
# itself keeps a lineage that is not due whatever --server asks.
set -euo pipefail
{% include "scripts/_common.sh" %}
{% include "scripts/_nginx.sh" %}

DOMAIN={{ ctx.domain | shquote }}
EMAIL={{ ctx.tls_email | shquote }}
ACME_SERVER={{ ctx.acme_server | shquote }}
WEBROOT="$R"{{ ctx.webroot | shquote }}
LETSENCRYPT_DIR="$R"{{ ctx.letsencrypt_dir | shquote }}
RENEW_BEFORE_DAYS=30
RENEWAL_CONF="$LETSENCRYPT_DIR/renewal/$DOMAIN.conf"
{% if ctx.acme_ca_path %}
# The ACME server's own HTTPS is verified against spec.tls.acmeCABundle, for this request only.
ACME_CA="$R"{{ ctx.acme_ca_path | shquote }}
{% else %}
ACME_CA=""
{% endif %}

# The ACME server that issued the lineage's certificate, as certbot recorded it (empty: none recorded).
issuing_server() {
  [ -s "$RENEWAL_CONF" ] || return 0
  sed -n 's/^server[[:space:]]*=[[:space:]]*//p' "$RENEWAL_CONF" | tail -n 1
}

report_certificate() {
  local not_after issuer
  not_after="$(openssl x509 -enddate -noout -in "$CERTIFICATE")"
  not_after="${not_after#notAfter=}"
  issuer="$(openssl x509 -issuer -noout -in "$CERTIFICATE")"
  o4o_result notAfter "$(date -u -d "$not_after" +%Y-%m-%dT%H:%M:%SZ)"
  o4o_result issuer "${issuer#issuer=}"
  o4o_result server "$1"
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

issued_by="$(issuing_server)"
if [ -s "$CERTIFICATE" ] && [ "$issued_by" = "$ACME_SERVER" ] &&
    openssl x509 -checkend $((RENEW_BEFORE_DAYS * 86400)) -noout -in "$CERTIFICATE" >/dev/null 2>&1; then
  o4o_step "Reusing the certificate for $DOMAIN from $ACME_SERVER: it is valid for more than $RENEW_BEFORE_DAYS days"
else
  renewal=--keep-until-expiring
  if [ -s "$CERTIFICATE" ] && [ "$issued_by" != "$ACME_SERVER" ]; then
    o4o_step "The certificate for $DOMAIN is from ${issued_by:-an ACME server certbot did not record}, not $ACME_SERVER: issuing it again"
    renewal=--force-renewal
  fi
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
      "$renewal" --deploy-hook "systemctl reload nginx" \
      --config-dir "$LETSENCRYPT_DIR" --work-dir "$R/var/lib/letsencrypt" --logs-dir "$R/var/log/letsencrypt" \
      2>&1 | tee "$output"; then
    fail_from_certbot_output "$output"
  fi
  [ -s "$CERTIFICATE" ] || o4o_transient AcmeRequestFailed "certbot reported success but $DOMAIN has no certificate"
  issued_by="$(issuing_server)"
  # Never report the old server's certificate as the new one's; asking again would only repeat this.
  [ "$issued_by" = "$ACME_SERVER" ] ||
    o4o_permanent AcmeServerMismatch "certbot kept the certificate for $DOMAIN from ${issued_by:-an unrecorded ACME server} instead of one from $ACME_SERVER (spec.tls.server)"
fi

report_certificate "$issued_by"
enable_site https
