#!/usr/bin/env bash
# The drift check's health probe for {{ ctx.instance_name }}: do / and {{ ctx.health_path }} answer exactly 200
# through nginx, over HTTPS once the certificate exists, and does the API's body say it works
# (spec.build.health)? Rendered by o4o-operator. Changes nothing.
set -euo pipefail
{% include "scripts/_common.sh" %}
{% include "scripts/_health.sh" %}

if health_check_once; then
  o4o_result health ok
else
  o4o_transient HealthCheckFailed "$HEALTH_DOMAIN did not answer 200 for every health path, or its health body did not say healthy"
fi
