#!/usr/bin/env bash
# Stage "runtime": Node.js 22 (NodeSource), pnpm (corepack), PM2, nginx, certbot
# and git, the instance's own user and its directory layout for team-a.shop.
# Rendered by o4o-operator. Safe to re-run: every step checks before it acts.
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

NODE_MAJOR=22
APP_HOME=/home/o4o-team-a-shop-6b3e3555
WEB_GROUP=www-data
BASE_DIR="$R"/srv/o4o/team-a.shop
STATE_DIR="$R"/var/lib/o4o/instances/team-a.shop
WEBROOT="$R"/var/lib/o4o/acme/team-a.shop

package_installed() {
  # shellcheck disable=SC2016 # ${Status} is dpkg-query's format, not a shell expansion
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

APT_UPDATED=0
apt_update_once() {
  if [ "$APT_UPDATED" = 0 ]; then
    apt-get update -qq
    APT_UPDATED=1
  fi
}

install_missing_packages() {
  local package
  local -a missing=()
  for package in "$@"; do
    package_installed "$package" || missing+=("$package")
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    o4o_step "Already installed: $*"
    return 0
  fi
  o4o_step "Installing ${missing[*]}"
  apt_update_once
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

install_missing_packages ca-certificates curl gnupg git openssl nginx certbot

node_major="$(node --version 2>/dev/null | sed -E 's/^v([0-9]+).*/\1/' || true)"
if [ "$node_major" = "$NODE_MAJOR" ]; then
  o4o_step "Node.js $NODE_MAJOR is already installed"
else
  o4o_step "Installing Node.js $NODE_MAJOR from NodeSource (found: ${node_major:-none})"
  keyring="$R/etc/apt/keyrings/nodesource.gpg"
  sources="$R/etc/apt/sources.list.d/nodesource.list"
  install -d -m 0755 "$R/etc/apt/keyrings" "$R/etc/apt/sources.list.d"
  if [ ! -s "$keyring" ]; then
    curl -fsSL https://deb.nodesource.com/gpgkey/nodesource-repo.gpg.key | gpg --dearmor --yes -o "$keyring"
  fi
  line="deb [signed-by=/etc/apt/keyrings/nodesource.gpg] https://deb.nodesource.com/node_$NODE_MAJOR.x nodistro main"
  if [ "$(cat "$sources" 2>/dev/null || true)" != "$line" ]; then
    printf '%s\n' "$line" > "$sources"
  fi
  APT_UPDATED=0
  apt_update_once
  apt-get install -y -qq nodejs
fi
o4o_result node "$(node --version)"

if pnpm --version >/dev/null 2>&1; then
  o4o_step "pnpm is already enabled"
else
  o4o_step "Enabling pnpm through corepack"
  corepack enable pnpm
fi

if pm2 --version >/dev/null 2>&1; then
  o4o_step "PM2 is already installed"
else
  o4o_step "Installing PM2"
  npm install --global --no-fund --no-audit pm2@5
fi

# One system user per instance: instances sharing a host cannot read each other's files.
if id -u "$APP_USER" >/dev/null 2>&1; then
  o4o_step "User $APP_USER exists"
else
  o4o_step "Creating user $APP_USER"
  useradd --system --user-group --create-home --home-dir "$R$APP_HOME" --shell /usr/sbin/nologin "$APP_USER"
fi
# PM2 keeps its logs and process list in the home directory: nobody else may look in.
install -d -m 0700 "$R$APP_HOME"
chown -h "$APP_USER:$APP_USER" "$R$APP_HOME"

# Root owns the parents, its state directory (markers, logs) and the ACME webroot. The instance user
# owns its base directory, which nginx's group may enter (to serve the site) and nobody else may.
install -d -m 0755 "$(dirname "$BASE_DIR")" "$(dirname "$STATE_DIR")" "$(dirname "$WEBROOT")"
install -d -m 0700 "$STATE_DIR" "$STATE_DIR/apps" "$STATE_DIR/activations"
install -d -m 0755 "$WEBROOT"
install -d -m 0750 "$BASE_DIR"
chown -h "$APP_USER:$WEB_GROUP" "$BASE_DIR"
as_app install -d -m 0755 "$BASE_DIR/releases"
as_app install -d -m 0700 "$BASE_DIR/shared"

if [ -f "$R/etc/systemd/system/pm2-$APP_USER.service" ]; then
  o4o_step "PM2 already starts at boot for $APP_USER"
else
  o4o_step "Making PM2 start at boot for $APP_USER"
  pm2 startup systemd -u "$APP_USER" --hp "$APP_HOME"
fi

systemctl is-enabled --quiet nginx || systemctl enable nginx
systemctl is-active --quiet nginx || systemctl start nginx
o4o_result runtime ready
