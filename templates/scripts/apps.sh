#!/usr/bin/env bash
# Stage "apps" of {{ ctx.instance_name }}, its host part: create the operator's admin account once, and report
# root's record of the apps this operator installed and the post-install steps it ran. The operator then logs
# in as that admin and installs, activates, deactivates and uninstalls apps through the instance's own API
# ({{ ctx.apps | join(", ") or "none" }}), and runs the declared post-install steps
# ({{ steps | map(attribute="name") | join(", ") or "none" }}), recording each with apps-ledger.
# Rendered by o4o-operator. The admin credentials come only from the environment (O4O_ADMIN_EMAIL,
# O4O_ADMIN_PASSWORD).
set -euo pipefail
{% include "scripts/_common.sh" %}
{% include "scripts/_apps_host.sh" %}

# ---- the admin account, once per instance (spec.build.api.adminCommand) ----------------------------------
if [ -f "$APPS_STATE"/{{ admin_marker | shquote }} ]; then
  o4o_step "The operator's admin account exists"
else
  o4o_step "Creating the operator's admin account (spec.build.api.adminCommand)"
  # Its output is kept back (O4O's script prints the password it set); only a redacted tail on failure.
  status=0
  (cd "$API_DIR" && o4o_with_env {{ admin_words }}) > "$WORK/admin.log" 2>&1 || status=$?
  if [ "$status" -ne 0 ]; then
    tail -n 20 "$WORK/admin.log" | o4o_redacted
    if [ "$status" -eq 127 ]; then
      o4o_permanent AdminCreateFailed "spec.build.api.adminCommand: command not found: "{{ admin_program | shquote }}
    fi
    o4o_transient AdminCreateFailed "spec.build.api.adminCommand exited with status $status; see the log"
  fi
  date -u +%Y-%m-%dT%H:%M:%SZ > "$APPS_STATE"/{{ admin_marker | shquote }}
fi

# ---- root's record: apps this operator installed, post-install steps it ran ---------------------------
o4o_result recordedApps "$(find "$APPS_STATE/apps" -mindepth 1 -maxdepth 1 -type f -printf '%f\n' | sort | paste -sd, -)"
o4o_result stepsRun "$(find "$APPS_STATE/post-install" -mindepth 1 -maxdepth 1 -type f -printf '%f\n' | sort | paste -sd, -)"
