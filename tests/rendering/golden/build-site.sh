#!/usr/bin/env bash
# Stage "build-site": build the static main site of shop at commit 0123456789abcdef0123456789abcdef01234567
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
# The instance's own user. Root never writes through a path that user controls (its base directory and
# everything below): such writes run as that user, so a planted symlink can only reach its own files.
APP_USER=o4o-team-a-shop-6b3e3555
as_app() { runuser -u "$APP_USER" -- "$@"; }
o4o_relink_as_app() {
  as_app ln -sfn "$1" "$2.o4o-tmp"
  as_app mv -Tf "$2.o4o-tmp" "$2"
}
# ------------------------------------------------------------------------------
COMMIT=0123456789abcdef0123456789abcdef01234567
REPO_DIR="$R"/srv/o4o/team-a.shop/repo
RELEASE_DIR="$R"/srv/o4o/team-a.shop/releases/0123456789abcdef0123456789abcdef01234567
PACKAGE=@o4o/main-site-nextgen
OUTPUT=apps/main-site/dist
BUILT_MARKER="$RELEASE_DIR/.o4o-built-site"

if [ -f "$BUILT_MARKER" ] && [ -e "$RELEASE_DIR/$OUTPUT" ]; then
  o4o_step "The site of release $COMMIT is already built"
  o4o_result built site
  exit 0
fi

# The release directory holds an export of the commit; it appears whole or not at all.
# Everything here happens in the instance user's directories, so everything runs as that user.
if [ ! -f "$RELEASE_DIR/.o4o-source" ]; then
  as_app git -C "$REPO_DIR" cat-file -e "$COMMIT^{commit}" 2>/dev/null ||
    o4o_transient SourceMissing "Commit $COMMIT is not in the local clone; the source stage runs first"
  o4o_step "Exporting commit $COMMIT into a release directory"
  as_app rm -rf "$RELEASE_DIR.staging"
  as_app install -d -m 0755 "$RELEASE_DIR.staging"
  as_app git -C "$REPO_DIR" archive --format=tar "$COMMIT" | as_app tar -x -C "$RELEASE_DIR.staging"
  as_app touch "$RELEASE_DIR.staging/.o4o-source"
  as_app rm -rf "$RELEASE_DIR"
  as_app mv -T "$RELEASE_DIR.staging" "$RELEASE_DIR"
fi

cd "$RELEASE_DIR"
if [ -f .o4o-installed ]; then
  o4o_step "Dependencies are already installed"
else
  [ -f pnpm-lock.yaml ] || o4o_permanent LockfileMissing "The repository has no pnpm-lock.yaml; builds must be reproducible"
  o4o_step "Installing dependencies"
  as_app env CI=true pnpm install --frozen-lockfile
  as_app touch .o4o-installed
fi

o4o_step "Building $PACKAGE"
as_app env CI=true NODE_ENV=production pnpm --filter "$PACKAGE" run build ||
  o4o_permanent BuildFailed "Building $PACKAGE at $COMMIT failed; see the log"
[ -e "$RELEASE_DIR/$OUTPUT" ] ||
  o4o_permanent BuildOutputMissing "Building $PACKAGE produced no $OUTPUT"
as_app touch "$BUILT_MARKER"
o4o_result built site

