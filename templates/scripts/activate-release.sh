#!/usr/bin/env bash
# Activate the release {{ ctx.commit }} of {{ ctx.instance_name }}: migrate, switch `current` and reload PM2. The
# operator then checks health (check-health.sh) and settles or rolls back (settle-release.sh).
# Rendered by o4o-operator. Safe to re-run.
set -euo pipefail
{% include "scripts/_common.sh" %}
{% include "scripts/_nginx.sh" %}
{% include "scripts/_activate.sh" %}
