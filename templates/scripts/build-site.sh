#!/usr/bin/env bash
# Stage "build-site": build the static main site of {{ ctx.instance_name }} at commit {{ ctx.commit }}
# into its release directory. Rendered by o4o-operator. Safe to re-run: a built release is skipped.
set -euo pipefail
{% include "scripts/_common.sh" %}
{% from "scripts/_build.sh" import build with context %}
{{ build("site", ctx.site_package, ctx.site_dist) }}
