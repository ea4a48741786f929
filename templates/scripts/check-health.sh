#!/usr/bin/env bash
# The health probe for {{ ctx.instance_name }}: do / and {{ ctx.health_path }} answer exactly 200 through nginx,
# over HTTPS once the certificate exists, and did the operator find the API's body healthy (spec.build.health)?
# Run by the drift check, and by activation once per attempt (O4O_HEALTH_ATTEMPT="<n>/<of>": its lines go
# into the release's activation log too). Rendered by o4o-operator. Changes nothing else.
set -euo pipefail
{% include "scripts/_common.sh" %}
{% include "scripts/_health.sh" %}
{% if ctx.commit %}
ACTIVATION_LOG="$R"{{ ctx.activation_log(ctx.commit) | shquote }}
{% else %}
ACTIVATION_LOG=""
{% endif %}

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
