#!/usr/bin/env bash
# Install app commerce into shop, then initialise the CMS if it never was.
# Rendered by o4o-operator from templates/apps/commerce.yaml. Safe to re-run.
set -euo pipefail
# ---- common prelude, rendered by o4o-operator -------------------------------
# Paths are logical; "$R" is the root prefix (empty on a real server).
R="${O4O_ROOT:-}"
export DEBIAN_FRONTEND=noninteractive
export GIT_TERMINAL_PROMPT=0
export COREPACK_ENABLE_DOWNLOAD_PROMPT=0
umask 022

# Marker protocol: ::o4o::result key=value, ::o4o::permanent|transient reason=X message.
o4o_step() { printf '==> %s\n' "$*"; }
o4o_result() { printf '::o4o::result %s=%s\n' "$1" "$2"; }
o4o_permanent() {
  local reason="$1"
  shift
  printf '::o4o::permanent reason=%s %s\n' "$reason" "$*"
  exit 65
}
o4o_transient() {
  local reason="$1"
  shift
  printf '::o4o::transient reason=%s %s\n' "$reason" "$*"
  exit 1
}
# Replace a symlink atomically: a new link beside it, then rename over it.
o4o_relink() {
  ln -sfn "$1" "$2.o4o-tmp"
  mv -Tf "$2.o4o-tmp" "$2"
}
# The instance's own user. Root never writes through a path that user controls (its base directory and
# everything below): such writes run as that user, so a planted symlink can only reach its own files.
APP_USER=o4o-team-a-shop-6b3e3555
as_app() { runuser -u "$APP_USER" -- "$@"; }
o4o_relink_as_app() {
  as_app ln -sfn "$1" "$2.o4o-tmp"
  as_app mv -Tf "$2.o4o-tmp" "$2"
}
# ------------------------------------------------------------------------------
CURRENT="$R"/srv/o4o/team-a.shop/current
# Root's own record of what is installed: in the root-owned state directory, never in the app's.
APPS_STATE="$R"/var/lib/o4o/instances/team-a.shop/apps
export O4O_ENV_FILE="$R"/srv/o4o/team-a.shop/shared/.env

[ -d "$CURRENT/" ] || o4o_transient ReleaseNotActive "No release is active yet; apps are installed into the live release"
install -d -m 0700 "$APPS_STATE"

marker="$APPS_STATE"/commerce.installed
if [ -f "$marker" ]; then
  o4o_step 'App commerce is already installed'
else
  o4o_step 'Installing app commerce: Online store with products, cart, checkout and order management.'
  o4o_step 'Create the commerce tables'
  (cd "$CURRENT" && as_app pnpm --filter @o4o/api-server run apps:install commerce) ||
    o4o_permanent AppInstallFailed 'Installing app commerce failed at: Create the commerce tables'
  o4o_step 'Add the shop pages and menu entries'
  (cd "$CURRENT" && as_app pnpm --filter @o4o/api-server run apps:pages commerce) ||
    o4o_permanent AppInstallFailed 'Installing app commerce failed at: Add the shop pages and menu entries'
  date -u +%Y-%m-%dT%H:%M:%SZ > "$marker"
fi

# The seed's phase F (default pages, menu, theme) runs once per instance, ever.
CMS_MARKER="$APPS_STATE/.cms-initialized"
if [ -f "$CMS_MARKER" ]; then
  o4o_step "The CMS was initialised before"
else
  o4o_step "Initialising the CMS: default pages, menu and theme"
  (cd "$CURRENT" && as_app pnpm --filter @o4o/api-server run seed --phase F) ||
    o4o_permanent CmsInitFailed "Initialising the CMS (seed phase F) failed; see the log"
  date -u +%Y-%m-%dT%H:%M:%SZ > "$CMS_MARKER"
fi

o4o_result installed commerce
