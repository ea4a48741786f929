#!/usr/bin/env bash
# Root's record of the apps stage of {{ ctx.instance_name }}, kept as the operator goes: apps it installed
# ({{ ledger.record | join(", ") or "none" }}), apps it removed ({{ ledger.forget | join(", ") or "none" }}),
# post-install steps that ran ({{ ledger.steps | join(", ") or "none" }}){% if ledger.command %}, after running
# the post-install command {{ ledger.command.name }} ({{ ledger.command.field }}) as the app user in the live
# release's API directory with the .env loaded{% endif %}. Rendered by o4o-operator.
set -euo pipefail
{% include "scripts/_common.sh" %}
{% include "scripts/_apps_host.sh" %}
{% if ledger.command %}
{% set step = ledger.command %}

o4o_step {{ ("Post-install step " ~ step.name ~ " (" ~ step.field ~ ")") | shquote }}
status=0
(cd "$API_DIR" && o4o_with_env {{ step.words }}) > "$WORK/step.log" 2>&1 || status=$?
tail -n 50 "$WORK/step.log" | o4o_redacted
if [ "$status" -eq 127 ]; then
  o4o_permanent PostInstallFailed {{ (step.field ~ " (" ~ step.name ~ "): command not found: " ~ step.program) | shquote }}
elif [ "$status" -ne 0 ]; then
  o4o_permanent PostInstallFailed {{ (step.field ~ " (" ~ step.name ~ "): exited with status ") | shquote }}"$status"
fi
{% endif %}
{% for app in ledger.record %}
date -u +%Y-%m-%dT%H:%M:%SZ > "$APPS_STATE"/apps/{{ app | shquote }}
{% endfor %}
{% for app in ledger.forget %}
rm -f "$APPS_STATE"/apps/{{ app | shquote }}
{% endfor %}
{% for marker in ledger.steps %}
date -u +%Y-%m-%dT%H:%M:%SZ > "$APPS_STATE"/post-install/{{ marker | shquote }}
{% endfor %}
