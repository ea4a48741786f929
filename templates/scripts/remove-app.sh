#!/usr/bin/env bash
# Remove app {{ app.name }} from {{ ctx.instance_name }}. Rendered by o4o-operator from
# templates/apps/{{ app.name }}.yaml. Safe to re-run: an app that is not installed is left alone.
set -euo pipefail
{% include "scripts/_common.sh" %}
{% import "scripts/_app.sh" as apps with context %}
{{ apps.app_vars() }}
{{ apps.remove_app(app) }}
o4o_result removed {{ app.name | shquote }}
