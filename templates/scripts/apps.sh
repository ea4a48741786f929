#!/usr/bin/env bash
# Stage "apps" of {{ ctx.instance_name }}, through the instance's own API: create the operator's admin account
# once, log in, install and activate the wanted apps ({{ ctx.apps | join(", ") or "none" }}), deactivate and
# uninstall the ones this operator installed that are no longer wanted, then run the declared post-install
# steps ({{ steps | map(attribute="name") | join(", ") or "none" }}) once each. Rendered by o4o-operator.
# The admin credentials come only from the environment (O4O_ADMIN_EMAIL, O4O_ADMIN_PASSWORD).
set -euo pipefail
{% include "scripts/_common.sh" %}
{% include "scripts/_apps_api.sh" %}
CURRENT="$R"{{ ctx.current_link | shquote }}
API_DIR="$CURRENT"/{{ ctx.api_dir | shquote }}
# Root's own record (admin created, apps it installed, steps run): in the root-owned state directory.
APPS_STATE="$R"{{ ctx.apps_state_dir | shquote }}

[ -d "$API_DIR/" ] || o4o_transient ReleaseNotActive "No release is active yet; apps are installed through its API"
if [ -z "${O4O_ADMIN_EMAIL:-}" ] || [ -z "${O4O_ADMIN_PASSWORD:-}" ]; then
  o4o_transient AdminCredentialsMissing "The admin credentials (Secret {{ ctx.instance_name }}-database) did not reach the script"
fi
install -d -m 0700 "$APPS_STATE" "$APPS_STATE/apps" "$APPS_STATE/post-install"
WORK=$(mktemp -d "$APPS_STATE/.work.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

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

o4o_login
o4o_api GET /api/v1/admin/apps/market
o4o_api_ok "Listing the instance's apps" ||
  o4o_transient AppsApiUnavailable "GET /api/v1/admin/apps/market answered HTTP $API_STATUS: $(o4o_words)"
MARKET=$(o4o_json market) || o4o_transient AppsApiUnavailable "GET /api/v1/admin/apps/market answered no apps list"
LISTED=$(paste -sd, - <<< "$MARKET" | sed 's/,/, /g')
LISTED=${LISTED:0:300}
o4o_list_apps

# ---- every wanted app must be one the instance lists, before anything changes ------------------------------
{% for field, app in wanted %}
grep -qxF {{ app | shquote }} <<< "$MARKET" ||
  o4o_permanent UnknownApp {{ (field ~ ": the instance lists no app named " ~ app ~ "; it lists: ") | shquote }}"${LISTED:-nothing}"
{% endfor %}

ADDED=()
REMOVED=()
# ---- apps this operator installed that are no longer wanted: deactivate, then uninstall -------------------
WANTED=({% for field, app in wanted %}{{ app | shquote }}{{ " " if not loop.last else "" }}{% endfor %})
for marker in "$APPS_STATE"/apps/*; do
  [ -f "$marker" ] || continue
  app=${marker##*/}
  wanted=no
  for want in "${WANTED[@]}"; do [ "$want" = "$app" ] && wanted=yes; done
  [ "$wanted" = no ] || continue
  state=$(o4o_app_state "$app")
  if [ "$state" = active ]; then
    o4o_step "Deactivating app $app (no longer in spec.apps)"
    o4o_app_call deactivate "$app" "spec.apps (removed $app)"
  fi
  if [ -n "$state" ]; then
    o4o_step "Uninstalling app $app (its data is kept)"
    o4o_app_call uninstall "$app" "spec.apps (removed $app)"
  fi
  rm -f "$marker"
  REMOVED+=("$app")
done

# ---- wanted apps that are not active: install if absent, then activate ----------------------------------
{% for field, app in wanted %}
state=$(o4o_app_state {{ app | shquote }})
if [ "$state" = active ]; then
  o4o_step {{ ("App " ~ app ~ " is active") | shquote }}
else
  if [ -z "$state" ]; then
    o4o_step {{ ("Installing app " ~ app) | shquote }}
    o4o_app_call install {{ app | shquote }} {{ field | shquote }}
  fi
  o4o_step {{ ("Activating app " ~ app) | shquote }}
  o4o_app_call activate {{ app | shquote }} {{ field | shquote }}
  ADDED+=({{ app | shquote }})
fi
date -u +%Y-%m-%dT%H:%M:%SZ > "$APPS_STATE"/apps/{{ app | shquote }}
{% endfor %}

# ---- declared post-install steps (spec.postInstall), once each -----------------------------------------
{% for step in steps %}
if [ -f "$APPS_STATE"/post-install/{{ step.marker | shquote }} ]; then
  o4o_step {{ ("Post-install step " ~ step.name ~ " ran before") | shquote }}
else
  o4o_step {{ ("Post-install step " ~ step.name ~ " (" ~ step.field ~ ")") | shquote }}
{% if step.kind == "command" %}
  status=0
  (cd "$API_DIR" && o4o_with_env {{ step.words }}) > "$WORK/step.log" 2>&1 || status=$?
  tail -n 50 "$WORK/step.log" | o4o_redacted
  if [ "$status" -eq 127 ]; then
    o4o_permanent PostInstallFailed {{ (step.field ~ " (" ~ step.name ~ "): command not found: " ~ step.program) | shquote }}
  elif [ "$status" -ne 0 ]; then
    o4o_permanent PostInstallFailed {{ (step.field ~ " (" ~ step.name ~ "): exited with status ") | shquote }}"$status"
  fi
{% else %}
{% if step.body is not none %}
  printf '%s' {{ step.body | shquote }} > "$WORK/body"
  o4o_api {{ step.method | shquote }} {{ step.path | shquote }} "$WORK/body"
{% else %}
  o4o_api {{ step.method | shquote }} {{ step.path | shquote }}
{% endif %}
  case "$API_STATUS" in
    2??) ;;
    *) o4o_permanent PostInstallFailed {{ (step.field ~ " (" ~ step.name ~ "): " ~ step.method ~ " " ~ step.path ~ " answered HTTP ") | shquote }}"$API_STATUS: $(o4o_words)" ;;
  esac
{% endif %}
  date -u +%Y-%m-%dT%H:%M:%SZ > "$APPS_STATE"/post-install/{{ step.marker | shquote }}
fi
{% endfor %}

o4o_list_apps
ACTIVE=$(awk '$2 == "active" { print $1 }' <<< "$INSTALLED" | sort | paste -sd, -)
o4o_result installed "$ACTIVE"
o4o_result added "$(IFS=,; printf '%s' "${ADDED[*]}")"
o4o_result removed "$(IFS=,; printf '%s' "${REMOVED[*]}")"
