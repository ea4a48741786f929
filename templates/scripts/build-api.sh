#!/usr/bin/env bash
# Stage "build-api": build the API server of {{ ctx.instance_name }} at commit {{ ctx.commit }}
# into its release directory, as spec.build.api says. Rendered by o4o-operator. Safe to re-run: a
# built release is skipped.
set -euo pipefail
{% include "scripts/_common.sh" %}
{% from "scripts/_build.sh" import prepare, finish with context %}
{{ prepare("api", ctx.api_dir ~ "/" ~ ctx.api_entry, ctx.api_build_digest) }}
API_PACKAGE={{ ctx.api_package | shquote }}
API_BUILD_SCRIPT={{ ctx.api_build_script | shquote }}
{% if ctx.api_bundle_script %}
API_BUNDLE_SCRIPT={{ ctx.api_bundle_script | shquote }}
{% endif %}
# The database is migrated at activation, in {{ ctx.api_dir | shquote }}, with: {{ ctx.api_migrate_command | map("shquote") | join(" ") }}
API_DIR={{ ctx.api_dir | shquote }}
KEEP_ACROSS_BUNDLE=({% for path in ctx.api_keep_across_bundle %}{{ " " if not loop.first else "" }}{{ path | shquote }}{% endfor %})
KEPT="$RELEASE_DIR/.o4o-kept"

o4o_require_script spec.build.api.package "$API_PACKAGE" spec.build.api.buildScript "$API_BUILD_SCRIPT"
{% if ctx.api_bundle_script %}
o4o_require_script spec.build.api.package "$API_PACKAGE" spec.build.api.bundleScript "$API_BUNDLE_SCRIPT"
{% endif %}
o4o_step "Building $API_PACKAGE and its workspace dependencies ($API_BUILD_SCRIPT)"
with_pnpm env CI=true NODE_ENV=production pnpm --filter "$API_PACKAGE..." --fail-if-no-match run "$API_BUILD_SCRIPT" ||
  o4o_permanent BuildFailed "Building $API_PACKAGE at $COMMIT failed; see the log"
{% if ctx.api_bundle_script %}
# The bundle step may clean dist/ (O4O's tsup does): spec.build.api.keepAcrossBundle is saved first, then
# put back, as upstream's deploy-api workflow keeps dist/database (the migrations dist/migrate.js runs).
as_app rm -rf "$KEPT"
for kept in "${KEEP_ACROSS_BUNDLE[@]}"; do
  if [ -e "$RELEASE_DIR/$API_DIR/$kept" ]; then
    o4o_step "Keeping $API_DIR/$kept across the bundle step"
    as_app mkdir -p "$(dirname "$KEPT/$kept")"
    as_app cp -a "$RELEASE_DIR/$API_DIR/$kept" "$KEPT/$kept"
  fi
done
o4o_step "Bundling $API_PACKAGE ($API_BUNDLE_SCRIPT)"
with_pnpm env CI=true NODE_ENV=production pnpm --filter "$API_PACKAGE" --fail-if-no-match run "$API_BUNDLE_SCRIPT" ||
  o4o_permanent BuildFailed "Bundling $API_PACKAGE ($API_BUNDLE_SCRIPT) at $COMMIT failed; see the log"
for kept in "${KEEP_ACROSS_BUNDLE[@]}"; do
  if [ -d "$KEPT/$kept" ]; then  # merged into whatever the bundle step wrote there
    as_app mkdir -p "$RELEASE_DIR/$API_DIR/$kept"
    as_app cp -a "$KEPT/$kept/." "$RELEASE_DIR/$API_DIR/$kept"
  elif [ -e "$KEPT/$kept" ]; then
    as_app mkdir -p "$(dirname "$RELEASE_DIR/$API_DIR/$kept")"
    as_app cp -a "$KEPT/$kept" "$RELEASE_DIR/$API_DIR/$kept"
  fi
done
as_app rm -rf "$KEPT"
{% endif %}
{% if ctx.api_migrate_script %}
MIGRATE_SCRIPT={{ ctx.api_migrate_script | shquote }}
[ -e "$RELEASE_DIR/$API_DIR/$MIGRATE_SCRIPT" ] ||
  o4o_permanent BuildOutputMissing "spec.build.api.migrateCommand: the build produced no $API_DIR/$MIGRATE_SCRIPT to migrate with (spec.build.api.keepAcrossBundle keeps what the bundle step cleans)"
{% endif %}
{{ finish("api", "spec.build.api.entryPoint") }}
