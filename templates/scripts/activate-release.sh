#!/usr/bin/env bash
# Activate release {{ ctx.commit }} of {{ ctx.instance_name }}: switch `current`, reload PM2, check
# health through nginx, and roll back to the previous release if the check fails.
# Rendered by o4o-operator. Safe to re-run.
set -euo pipefail
{% include "scripts/_common.sh" %}
{% include "scripts/_nginx.sh" %}
{% include "scripts/_activate.sh" %}
