#!/usr/bin/env bash
# Stage "build-api": build the API server of shop at commit 0123456789abcdef0123456789abcdef01234567
# into its release directory. Rendered by o4o-operator. Safe to re-run: a built release is skipped.
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
# ------------------------------------------------------------------------------
COMMIT=0123456789abcdef0123456789abcdef01234567
APP_USER=o4o
REPO_DIR="$R"/srv/o4o/shop/repo
RELEASE_DIR="$R"/srv/o4o/shop/releases/0123456789abcdef0123456789abcdef01234567
PACKAGE=@o4o/api-server
OUTPUT=apps/api-server/dist/main.js
BUILT_MARKER="$RELEASE_DIR/.o4o-built-api"

as_app() { runuser -u "$APP_USER" -- "$@"; }

if [ -f "$BUILT_MARKER" ] && [ -e "$RELEASE_DIR/$OUTPUT" ]; then
  o4o_step "The api of release $COMMIT is already built"
  o4o_result built api
  exit 0
fi

# The release directory holds an export of the commit; it appears whole or not at all.
if [ ! -f "$RELEASE_DIR/.o4o-source" ]; then
  git -C "$REPO_DIR" cat-file -e "$COMMIT^{commit}" 2>/dev/null ||
    o4o_transient SourceMissing "Commit $COMMIT is not in the local clone; the source stage runs first"
  o4o_step "Exporting commit $COMMIT into a release directory"
  rm -rf "$RELEASE_DIR.staging"
  install -d -m 0755 "$RELEASE_DIR.staging"
  git -C "$REPO_DIR" archive --format=tar "$COMMIT" | tar -x -C "$RELEASE_DIR.staging"
  touch "$RELEASE_DIR.staging/.o4o-source"
  chown -R "$APP_USER:$APP_USER" "$RELEASE_DIR.staging"
  rm -rf "$RELEASE_DIR"
  mv -T "$RELEASE_DIR.staging" "$RELEASE_DIR"
fi

cd "$RELEASE_DIR"
if [ -f .o4o-installed ]; then
  o4o_step "Dependencies are already installed"
else
  [ -f pnpm-lock.yaml ] || o4o_permanent LockfileMissing "The repository has no pnpm-lock.yaml; builds must be reproducible"
  o4o_step "Installing dependencies"
  as_app env CI=true pnpm install --frozen-lockfile
  touch .o4o-installed
fi

o4o_step "Building $PACKAGE"
as_app env CI=true NODE_ENV=production pnpm --filter "$PACKAGE" run build ||
  o4o_permanent BuildFailed "Building $PACKAGE at $COMMIT failed; see the log"
[ -e "$RELEASE_DIR/$OUTPUT" ] ||
  o4o_permanent BuildOutputMissing "Building $PACKAGE produced no $OUTPUT"
touch "$BUILT_MARKER"
o4o_result built api

