#!/usr/bin/env bash
# Install app {{ app.name }} into {{ ctx.instance_name }}, then initialise the CMS if it never was.
# Rendered by o4o-operator from templates/apps/{{ app.name }}.yaml. Safe to re-run.
set -euo pipefail
{% include "scripts/_common.sh" %}
{% import "scripts/_app.sh" as apps with context %}
{{ apps.app_vars() }}
{{ apps.install_app(app) }}
{{ apps.cms_init() }}
o4o_result installed {{ app.name | shquote }}
