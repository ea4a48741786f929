#!/usr/bin/env bash
# Stage "runtime": Node.js {{ ctx.node_version }} from its official release tarball, checked against the
# release's SHASUMS256.txt (as nvm, volta and actions/setup-node install it); pnpm {{ ctx.pnpm_version }} and
# PM2 {{ ctx.pm2_version }} from npm; nginx, certbot, git and curl from apt; the instance's own user, PM2 at boot and
# its directory layout for {{ ctx.slug }}. Downloads go through whatever proxy the environment names
# (https_proxy, no_proxy), as on any server behind one.
# Rendered by o4o-operator. Safe to re-run: every step checks before it acts.
set -euo pipefail
{% include "scripts/_common.sh" %}

NODE_VERSION={{ ctx.node_version | shquote }}
NODE_MIRROR={{ ctx.node_mirror | shquote }}
NODE_DIR="$R"{{ ctx.node_dir | shquote }}
PREFIX="$R"{{ ctx.global_prefix | shquote }}
PNPM_VERSION={{ ctx.pnpm_version | shquote }}
PM2_VERSION={{ ctx.pm2_version | shquote }}
APP_HOME={{ ("/home/" ~ ctx.app_user) | shquote }}
WEB_GROUP={{ ctx.web_group | shquote }}
BASE_DIR="$R"{{ ctx.base_dir | shquote }}
STATE_DIR="$R"{{ ctx.state_dir | shquote }}
WEBROOT="$R"{{ ctx.webroot | shquote }}
PM2_UNIT="pm2-$APP_USER"

{% include "scripts/_apt.sh" %}

if command -v cloud-init >/dev/null 2>&1; then
  o4o_step "Waiting for cloud-init to finish the first boot"
  cloud-init status --wait >/dev/null 2>&1 || true
fi
# build-essential and python3: node-gyp compiles native modules that have no prebuilt binary for this server.
install_missing_packages ca-certificates curl xz-utils git openssl nginx certbot build-essential python3

# ---- Node.js -----------------------------------------------------------------------------------
case "$(uname -m)" in
  x86_64 | amd64) NODE_ARCH=x64 ;;
  aarch64 | arm64) NODE_ARCH=arm64 ;;
  *) o4o_permanent UnsupportedArchitecture "Node.js releases exist for x86_64 and aarch64 servers, not $(uname -m)" ;;
esac
NODE_TARBALL="node-v$NODE_VERSION-linux-$NODE_ARCH.tar.xz"
NODE_RELEASE_URL="$NODE_MIRROR/v$NODE_VERSION"
# "<sha256>  <tarball>": written last, after the checksum matched and the tarball was unpacked whole.
NODE_MARKER="$NODE_DIR/.o4o-release"

download() {
  curl -fsSL --retry 3 --retry-connrefused --connect-timeout 30 --max-time 900 -o "$2" "$1"
}

node_installed() {
  local recorded
  recorded="$(cat "$NODE_MARKER" 2>/dev/null || true)"
  [ "${recorded#*  }" = "$NODE_TARBALL" ] &&
    [ "$("$NODE_DIR/bin/node" --version 2>/dev/null || true)" = "v$NODE_VERSION" ]
}

install_node() {
  local expected actual npmrc
  NODE_WORK="$(mktemp -d)"
  trap 'rm -rf "$NODE_WORK"' EXIT
  o4o_step "Downloading $NODE_RELEASE_URL/SHASUMS256.txt"
  download "$NODE_RELEASE_URL/SHASUMS256.txt" "$NODE_WORK/SHASUMS256.txt" ||
    o4o_transient NodeDownloadFailed "Could not download $NODE_RELEASE_URL/SHASUMS256.txt (is the Node.js mirror reachable, through the server's proxy if it has one?)"
  expected="$(awk -v name="$NODE_TARBALL" '$2 == name { print $1 }' "$NODE_WORK/SHASUMS256.txt")"
  [ -n "$expected" ] ||
    o4o_transient NodeReleaseNotFound "$NODE_RELEASE_URL/SHASUMS256.txt lists no $NODE_TARBALL"
  o4o_step "Downloading $NODE_RELEASE_URL/$NODE_TARBALL"
  download "$NODE_RELEASE_URL/$NODE_TARBALL" "$NODE_WORK/$NODE_TARBALL" ||
    o4o_transient NodeDownloadFailed "Could not download $NODE_RELEASE_URL/$NODE_TARBALL"
  actual="$(sha256sum "$NODE_WORK/$NODE_TARBALL" | cut -d ' ' -f 1)"
  if [ "$actual" != "$expected" ]; then
    o4o_transient NodeChecksumMismatch "$NODE_TARBALL from $NODE_RELEASE_URL has SHA-256 $actual but SHASUMS256.txt says $expected; nothing was installed"
  fi
  o4o_step "Unpacking $NODE_TARBALL (SHA-256 $actual, as SHASUMS256.txt says) into $NODE_DIR"
  rm -rf "$NODE_DIR.staging"
  install -d -m 0755 "$NODE_DIR.staging"
  tar -xJf "$NODE_WORK/$NODE_TARBALL" -C "$NODE_DIR.staging" --strip-components=1 --no-same-owner
  if [ ! -x "$NODE_DIR.staging/bin/node" ] || [ ! -d "$NODE_DIR.staging/lib/node_modules/npm" ]; then
    o4o_transient NodeTarballInvalid "$NODE_TARBALL holds no bin/node and lib/node_modules/npm"
  fi
  # npm's global prefix is /usr/local, as after `tar -C /usr/local`: global packages land on PATH and
  # outlive this Node.js version, and npm reads /usr/local/etc/npmrc (a proxy set there, say).
  npmrc="$NODE_DIR.staging/lib/node_modules/npm/npmrc"
  { grep -v '^prefix *=' "$npmrc" 2>/dev/null || true; printf 'prefix=%s\n' "$PREFIX"; } > "$npmrc.o4o-tmp"
  mv -f "$npmrc.o4o-tmp" "$npmrc"
  printf '%s  %s\n' "$expected" "$NODE_TARBALL" > "$NODE_DIR.staging/.o4o-release"
  rm -rf "$NODE_DIR"
  mv -T "$NODE_DIR.staging" "$NODE_DIR"
}

if node_installed; then
  o4o_step "Node.js $NODE_VERSION is already installed in $NODE_DIR"
else
  install_node
fi
install -d -m 0755 "$PREFIX/bin"
for tool in node npm npx; do
  if [ "$(readlink "$PREFIX/bin/$tool" 2>/dev/null || true)" != "$NODE_DIR/bin/$tool" ]; then
    o4o_step "Linking $PREFIX/bin/$tool to Node.js $NODE_VERSION"
    o4o_relink "$NODE_DIR/bin/$tool" "$PREFIX/bin/$tool"
  fi
done
o4o_result node "$("$PREFIX/bin/node" --version)"

# ---- pnpm and PM2, from npm ----------------------------------------------------------------------
# What npm installed globally, asked of npm: `pm2 --version` would start a PM2 daemon for root.
global_version() {
  local line
  line="$(npm ls --global --depth=0 --parseable --long "$1" 2>/dev/null | head -n 1 || true)"
  if [ -n "$line" ]; then printf '%s\n' "${line##*@}"; fi
}

# install_global NAME VERSION FOUND: npm install -g NAME@VERSION unless FOUND is that version already.
install_global() {
  if [ "$3" = "$2" ]; then
    o4o_step "$1 $2 is already installed"
  else
    o4o_step "Installing $1 $2 with npm (found: ${3:-none})"
    npm install --global --no-fund --no-audit --no-update-notifier "$1@$2"
  fi
}
install_global pnpm "$PNPM_VERSION" "$(global_version pnpm)"
pm2_found="$(global_version pm2)"
install_global pm2 "$PM2_VERSION" "$pm2_found"

# ---- the app user, the layout, PM2 at boot ----------------------------------------------------------
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

# The app user's PM2 daemon runs under its own systemd unit, so the API comes back after a reboot.
if [ -f "$R/etc/systemd/system/$PM2_UNIT.service" ]; then
  o4o_step "PM2 already starts at boot for $APP_USER"
else
  o4o_step "Making PM2 start at boot for $APP_USER ($PM2_UNIT.service)"
  pm2 startup systemd -u "$APP_USER" --hp "$APP_HOME"
  systemctl daemon-reload
fi
systemctl is-enabled --quiet "$PM2_UNIT" || systemctl enable "$PM2_UNIT"
if ! systemctl is-active --quiet "$PM2_UNIT"; then
  o4o_step "Starting $PM2_UNIT"
  systemctl start "$PM2_UNIT"
elif [ -n "$pm2_found" ] && [ "$pm2_found" != "$PM2_VERSION" ]; then
  o4o_step "Restarting $PM2_UNIT: its daemon is still PM2 $pm2_found"
  systemctl restart "$PM2_UNIT"
fi

systemctl is-enabled --quiet nginx || systemctl enable nginx
systemctl is-active --quiet nginx || systemctl start nginx
o4o_result runtime ready
