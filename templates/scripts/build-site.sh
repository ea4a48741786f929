#!/usr/bin/env bash
# Stage "build-site": build the static main site of {{ ctx.instance_name }} at commit {{ ctx.commit }}
# into its release directory, as spec.build.site says. Rendered by o4o-operator. Safe to re-run: a
# built release is skipped.
set -euo pipefail
{% include "scripts/_common.sh" %}
{% from "scripts/_build.sh" import prepare, finish with context %}
{{ prepare("site", ctx.site_dist ~ "/index.html", ctx.site_build_digest) }}
SITE_PACKAGE={{ ctx.site_package | shquote }}
SITE_SCRIPT={{ ctx.site_build_script | shquote }}
# Build-time variables: Vite bakes them into the site (the API address of this domain).
SITE_ENV=(
{% for name, value in ctx.site_build_env %}
  {{ (name ~ "=" ~ value) | shquote }}
{% endfor %}
)

o4o_require_script spec.build.site.package "$SITE_PACKAGE" spec.build.site.buildScript "$SITE_SCRIPT"
o4o_step "Building $SITE_PACKAGE and its workspace dependencies ($SITE_SCRIPT)"
with_pnpm env CI=true NODE_ENV=production "${SITE_ENV[@]}" \
  pnpm --filter "$SITE_PACKAGE..." --fail-if-no-match run "$SITE_SCRIPT" ||
  o4o_permanent BuildFailed "Building $SITE_PACKAGE at $COMMIT failed; see the log"
{{ finish("site", "spec.build.site.outputDir") }}
