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
# The database is migrated later, in {{ ctx.api_dir | shquote }}, with: {{ ctx.api_migrate_command | map("shquote") | join(" ") }}

o4o_require_script spec.build.api.package "$API_PACKAGE" spec.build.api.buildScript "$API_BUILD_SCRIPT"
{% if ctx.api_bundle_script %}
o4o_require_script spec.build.api.package "$API_PACKAGE" spec.build.api.bundleScript "$API_BUNDLE_SCRIPT"
{% endif %}
o4o_step "Building $API_PACKAGE and its workspace dependencies ($API_BUILD_SCRIPT)"
as_app env CI=true NODE_ENV=production pnpm --filter "$API_PACKAGE..." --fail-if-no-match run "$API_BUILD_SCRIPT" ||
  o4o_permanent BuildFailed "Building $API_PACKAGE at $COMMIT failed; see the log"
{% if ctx.api_bundle_script %}
o4o_step "Bundling $API_PACKAGE ($API_BUNDLE_SCRIPT)"
as_app env CI=true NODE_ENV=production pnpm --filter "$API_PACKAGE" --fail-if-no-match run "$API_BUNDLE_SCRIPT" ||
  o4o_permanent BuildFailed "Bundling $API_PACKAGE ($API_BUNDLE_SCRIPT) at $COMMIT failed; see the log"
{% endif %}
{{ finish("api", "spec.build.api.entryPoint") }}
