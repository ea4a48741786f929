#!/usr/bin/env bash
# Stage "runtime": Node.js {{ ctx.node_major }} (NodeSource), pnpm (corepack), PM2, nginx, certbot
# and git, the instance's own user and its directory layout for {{ ctx.slug }}.
# Rendered by o4o-operator. Safe to re-run: every step checks before it acts.
set -euo pipefail
{% include "scripts/_common.sh" %}

NODE_MAJOR={{ ctx.node_major | shquote }}
APP_HOME={{ ("/home/" ~ ctx.app_user) | shquote }}
WEB_GROUP={{ ctx.web_group | shquote }}
BASE_DIR="$R"{{ ctx.base_dir | shquote }}
STATE_DIR="$R"{{ ctx.state_dir | shquote }}
WEBROOT="$R"{{ ctx.webroot | shquote }}

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
