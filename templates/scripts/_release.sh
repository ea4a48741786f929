# ---- a release's activation state: where it lives, how PM2 reloads it, what is pruned --------
COMMIT={{ ctx.commit | shquote }}
BASE_DIR="$R"{{ ctx.base_dir | shquote }}
RELEASES_DIR="$BASE_DIR/releases"
CURRENT="$BASE_DIR/current"
ECOSYSTEM="$R"{{ ctx.ecosystem_path | shquote }}
KEEP_RELEASES={{ ctx.keep_releases | shquote }}
# Root writes the activation log and the markers (<commit>.failed, .migrated, .previous), so they live in its own state directory.
ACTIVATIONS="$R"{{ ctx.activation_log_dir | shquote }}
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
