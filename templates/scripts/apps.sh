#!/usr/bin/env bash
# Stage "apps": install the wanted apps of {{ ctx.instance_name }} ({{ ctx.apps | join(", ") or "none" }}),
# remove installed ones no longer wanted, and initialise the CMS once.
# Rendered by o4o-operator from templates/apps/*.yaml. Safe to re-run: state lives in marker files.
set -euo pipefail
{% include "scripts/_common.sh" %}
{% import "scripts/_app.sh" as apps with context %}
{{ apps.app_vars() }}
{% for app in unwanted %}
{{ apps.remove_app(app) }}
{% endfor %}
{% for app in wanted %}
{{ apps.install_app(app) }}
{% endfor %}
{{ apps.cms_init() }}
o4o_result apps {{ ctx.apps | join(",") | shquote }}
