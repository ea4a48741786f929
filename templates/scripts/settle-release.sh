#!/usr/bin/env bash
# Settle the activation of release {{ ctx.commit }} of {{ ctx.instance_name }} once the operator has judged its
# health (O4O_SETTLE): "healthy" keeps it; "failed" marks it, keeps PM2's last words in its activation log and
# switches current back to the release it replaced (if any); "rolled-back" finishes that rollback.
# Rendered by o4o-operator. Safe to re-run: each mode checks before it acts.
set -euo pipefail
{% include "scripts/_common.sh" %}
{% include "scripts/_release.sh" %}
PM2_APP={{ ctx.pm2_app_name | shquote }}
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
