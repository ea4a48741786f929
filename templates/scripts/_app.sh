{% macro app_vars() %}
CURRENT="$R"{{ ctx.current_link | shquote }}
# Root's own record of what is installed: in the root-owned state directory, never in the app's.
APPS_STATE="$R"{{ ctx.apps_state_dir | shquote }}
export O4O_ENV_FILE="$R"{{ ctx.env_path | shquote }}

[ -d "$CURRENT/" ] || o4o_transient ReleaseNotActive "No release is active yet; apps are installed into the live release"
install -d -m 0700 "$APPS_STATE"
{% endmacro %}

{% macro install_app(app) %}
marker="$APPS_STATE"/{{ (app.name ~ ".installed") | shquote }}
if [ -f "$marker" ]; then
  o4o_step {{ ("App " ~ app.name ~ " is already installed") | shquote }}
else
  o4o_step {{ ("Installing app " ~ app.name ~ ": " ~ app.description) | shquote }}
{% for step in app.install %}
  o4o_step {{ step.name | shquote }}
  (cd "$CURRENT" && as_app{% for arg in step.run %} {{ arg | shquote }}{% endfor %}) ||
    o4o_permanent AppInstallFailed {{ ("Installing app " ~ app.name ~ " failed at: " ~ step.name) | shquote }}
{% endfor %}
  date -u +%Y-%m-%dT%H:%M:%SZ > "$marker"
fi
{% endmacro %}

{% macro remove_app(app) %}
marker="$APPS_STATE"/{{ (app.name ~ ".installed") | shquote }}
if [ -f "$marker" ]; then
  o4o_step {{ ("Removing app " ~ app.name) | shquote }}
{% for step in app.remove %}
  o4o_step {{ step.name | shquote }}
  (cd "$CURRENT" && as_app{% for arg in step.run %} {{ arg | shquote }}{% endfor %}) ||
    o4o_permanent AppRemoveFailed {{ ("Removing app " ~ app.name ~ " failed at: " ~ step.name) | shquote }}
{% endfor %}
  rm -f "$marker"
fi
{% endmacro %}

{% macro cms_init() %}
# The seed's phase F (default pages, menu, theme) runs once per instance, ever.
CMS_MARKER="$APPS_STATE/.cms-initialized"
if [ -f "$CMS_MARKER" ]; then
  o4o_step "The CMS was initialised before"
else
  o4o_step "Initialising the CMS: default pages, menu and theme"
  (cd "$CURRENT" && as_app{% for arg in ctx.cms_init_command %} {{ arg | shquote }}{% endfor %}) ||
    o4o_permanent CmsInitFailed "Initialising the CMS (seed phase F) failed; see the log"
  date -u +%Y-%m-%dT%H:%M:%SZ > "$CMS_MARKER"
fi
{% endmacro %}
