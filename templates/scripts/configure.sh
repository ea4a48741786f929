#!/usr/bin/env bash
# Stage "configure": put the nginx site and .env in place, then activate release {{ ctx.commit }}.
# Rendered by o4o-operator for {{ ctx.instance_name }}. The caller uploads the nginx sites, the PM2
# ecosystem and .env first. Safe to re-run: each step checks before it acts.
set -euo pipefail
{% include "scripts/_common.sh" %}
{% include "scripts/_nginx.sh" %}

ENV_FILE="$R"{{ ctx.env_path | shquote }}
WEBROOT="$R"{{ ctx.webroot | shquote }}

install -d -m 0755 "$WEBROOT/.well-known/acme-challenge"
# .env is uploaded as (and owned by) the instance user, in that user's directory: only that user touches
# it here too. Root changing its mode or owner would follow whatever link the user put in its place.
if [ ! -f "$ENV_FILE" ]; then
  o4o_step "Creating an empty .env"
  as_app install -m 0600 /dev/null "$ENV_FILE"
fi
as_app chmod 0600 "$ENV_FILE"
# Uploads outlive releases in the shared directory, which nginx's group may now pass through (never list:
# mode 0711; the base directory already keeps everyone else out) to serve them at /uploads/.
as_app chmod 0711 "$R"{{ ctx.shared_dir | shquote }}
as_app install -d -m 0755 "$R"{{ ctx.uploads_dir | shquote }}

# HTTP until a certificate exists (the ACME challenge must be reachable first), HTTPS after.
if [ -s "$CERTIFICATE" ] && [ -f "$SITE_HTTPS" ]; then
  enable_site https
else
  enable_site http
fi

{% include "scripts/_activate.sh" %}
