#!/usr/bin/env bash
# Stage "build-api": build the API server of {{ ctx.instance_name }} at commit {{ ctx.commit }}
# into its release directory. Rendered by o4o-operator. Safe to re-run: a built release is skipped.
set -euo pipefail
{% include "scripts/_common.sh" %}
{% from "scripts/_build.sh" import build with context %}
{{ build("api", ctx.api_package, ctx.api_dir + "/" + ctx.api_entry) }}
