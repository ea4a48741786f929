#!/usr/bin/env bash
# Settle the activation of release 0123456789abcdef0123456789abcdef01234567 of shop once the operator has judged its
# health (O4O_SETTLE): "healthy" keeps it; "failed" marks it, keeps PM2's last words in its activation log and
# switches current back to the release it replaced (if any); "rolled-back" finishes that rollback.
# Rendered by o4o-operator. Safe to re-run: each mode checks before it acts.
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
# ---- a release's activation state: where it lives, how PM2 reloads it, what is pruned --------
COMMIT=0123456789abcdef0123456789abcdef01234567
BASE_DIR="$R"/srv/o4o/team-a.shop
RELEASES_DIR="$BASE_DIR/releases"
CURRENT="$BASE_DIR/current"
ECOSYSTEM="$R"/srv/o4o/team-a.shop/shared/ecosystem.config.js
KEEP_RELEASES=5
# Root writes the activation log and the markers (<commit>.failed, .migrated, .previous), so they live in its own state directory.
ACTIVATIONS="$R"/var/lib/o4o/instances/team-a.shop/activations
ACTIVATION_LOG="$ACTIVATIONS/$COMMIT.log"
# Written before current switches to this release, removed once it is settled (healthy, or rolled back):
# the release to roll back to, so an activation the operator did not see through resumes correctly.
PENDING_MARKER="$ACTIVATIONS/$COMMIT.previous"

reload_app() {
  [ -f "$ECOSYSTEM" ] || o4o_transient ConfigMissing "The PM2 ecosystem file has not been uploaded yet"
  # The app user's PM2 daemon belongs under its systemd unit, never to this SSH session.
  if ! systemctl is-active --quiet "pm2-$APP_USER"; then
    o4o_step "Starting pm2-$APP_USER: it was not running"
    systemctl start "pm2-$APP_USER"
  fi
  as_app pm2 startOrReload "$ECOSYSTEM" --update-env
  as_app pm2 save --force >/dev/null
}

prune_releases() {
  local live count=0 name
  live="$(readlink "$CURRENT" 2>/dev/null || true)"
  live="${live#releases/}"
  while read -r _ name; do
    count=$((count + 1))
    if [ "$count" -le "$KEEP_RELEASES" ] || [ "$name" = "$live" ]; then
      continue
    fi
    o4o_step "Pruning release $name"
    as_app rm -rf -- "${RELEASES_DIR:?}/$name"
    rm -f -- "$ACTIVATIONS/$name.log" "$ACTIVATIONS/$name.failed" "$ACTIVATIONS/$name.migrated" \
      "$ACTIVATIONS/$name.previous"
  done < <(find "$RELEASES_DIR" -mindepth 1 -maxdepth 1 -type d ! -name '*.staging' -printf '%T@ %f\n' | sort -rn)
}
# ------------------------------------------------------------------------------
PM2_APP=o4o-team-a.shop-api
FAILED_MARKER="$ACTIVATIONS/$COMMIT.failed"

install -d -m 0700 "$ACTIVATIONS"
rollback_to="$(cat "$PENDING_MARKER" 2>/dev/null || true)"
[ -n "$rollback_to" ] && [ -d "$BASE_DIR/$rollback_to" ] || rollback_to=""

case "${O4O_SETTLE:-}" in
  healthy)
    rm -f "$FAILED_MARKER" "$PENDING_MARKER"
    o4o_result release "$COMMIT"
    prune_releases
    ;;
  failed)
    touch "$FAILED_MARKER"
    as_app pm2 logs "$PM2_APP" --lines 50 --nostream >> "$ACTIVATION_LOG" 2>&1 || true
    if [ -z "$rollback_to" ]; then
      rm -f "$PENDING_MARKER"
      o4o_result rolledBackTo ""
    else
      if [ "$(readlink "$CURRENT" 2>/dev/null || true)" != "$rollback_to" ]; then
        o4o_step "Rolling back to $rollback_to"
        o4o_relink_as_app "$rollback_to" "$CURRENT"
      fi
      reload_app
      o4o_result rolledBackTo "${rollback_to#releases/}"
    fi
    ;;
  rolled-back)
    prune_releases
    rm -f "$PENDING_MARKER"
    o4o_result release "${rollback_to#releases/}"
    ;;
  *)
    o4o_permanent InternalError "settle-release.sh needs O4O_SETTLE=healthy, failed or rolled-back"
    ;;
esac
