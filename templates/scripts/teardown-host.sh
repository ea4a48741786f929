#!/usr/bin/env bash
# The teardown of {{ ctx.slug }} on an existing host (spec.provider.existing), when its DeploymentInstance is
# deleted: its PM2 app and the pm2-<user> unit, its nginx sites and logs, its certificate, its local database
# and role, its directories, its state and its user. Only this instance's: every name below carries its
# slug or its user (o4o-<namespace>-<name>-<hash>, made by setup-runtime for this instance alone). What the
# host shares (Node.js, pnpm, PM2, nginx, certbot, PostgreSQL) stays. The database mode arrives in the
# environment (O4O_DB_MODE); the role and database names are those setup-database recorded.
# Rendered by o4o-operator. Safe to re-run: whatever is already gone is skipped.
set -euo pipefail
{% include "scripts/_common.sh" %}

DB_MODE="${O4O_DB_MODE:-local}"
DOMAIN={{ ctx.domain | shquote }}
PM2_APP={{ ctx.pm2_app_name | shquote }}
PM2_UNIT="pm2-$APP_USER"
PM2_UNIT_FILE="$R/etc/systemd/system/$PM2_UNIT.service"
APP_HOME="$R"{{ ("/home/" ~ ctx.app_user) | shquote }}
BASE_DIR="$R"{{ ctx.base_dir | shquote }}
STATE_DIR="$R"{{ ctx.state_dir | shquote }}
WEBROOT="$R"{{ ctx.webroot | shquote }}
LETSENCRYPT_DIR="$R"{{ ctx.letsencrypt_dir | shquote }}
NGINX_DIR="$R"{{ ctx.nginx_dir | shquote }}
SITE_HTTP="$R"{{ ctx.nginx_site_path(false) | shquote }}
SITE_HTTPS="$R"{{ ctx.nginx_site_path(true) | shquote }}
SITE_ENABLED="$R"{{ ctx.nginx_enabled_path | shquote }}
NGINX_LOG_DIR="$R"{{ ctx.nginx_log_dir | shquote }}
SITE_STEM={{ ctx.nginx_site_stem | shquote }}

user_exists() { id -u "$APP_USER" >/dev/null 2>&1; }

# ---- the API: its PM2 app, then the user's PM2 daemon and its unit ------------------------------
# pm2 is asked only while the unit runs: a pm2 call without a daemon would start one for this session.
if user_exists && systemctl is-active --quiet "$PM2_UNIT"; then
  o4o_step "Deleting PM2 app $PM2_APP"
  as_app pm2 delete "$PM2_APP" >/dev/null 2>&1 || o4o_step "PM2 runs no app $PM2_APP"
fi
if [ -f "$PM2_UNIT_FILE" ]; then
  o4o_step "Stopping and removing $PM2_UNIT.service"
  systemctl stop "$PM2_UNIT" || o4o_transient HostTeardownFailed "Could not stop $PM2_UNIT"
  systemctl disable "$PM2_UNIT" >/dev/null 2>&1 || true
  rm -f -- "$PM2_UNIT_FILE"
  systemctl daemon-reload
else
  o4o_step "No $PM2_UNIT.service"
fi
o4o_result pm2 removed

# ---- nginx: the enabled link, both site variants, the logs; reload only a configuration that passes ----
removed_site=0
for file in "$SITE_ENABLED" "$SITE_HTTP" "$SITE_HTTPS"; do
  if [ -e "$file" ] || [ -L "$file" ]; then
    o4o_step "Removing ${file#"$R"}"
    rm -f -- "$file"
    removed_site=1
  fi
done
rm -f -- "$NGINX_LOG_DIR/$SITE_STEM".access.log* "$NGINX_LOG_DIR/$SITE_STEM".error.log*
if [ "$removed_site" = 0 ]; then
  o4o_result nginx "no site"
elif ! command -v nginx >/dev/null 2>&1 || ! systemctl is-active --quiet nginx; then
  o4o_result nginx "site removed (nginx is not running)"
elif nginx -t; then
  systemctl reload nginx
  o4o_result nginx "site removed, reloaded"
else
  # Another site broke the configuration: a reload would fail. nginx drops this site at its next reload.
  o4o_step "nginx -t fails without this instance's site; not reloading (nginx serves it until its next reload)"
  o4o_result nginx "site removed, not reloaded: nginx -t fails"
fi

# ---- the certificate (its cert name is the domain), unless another site on the host serves that domain ---
if [ -e "$LETSENCRYPT_DIR/renewal/$DOMAIN.conf" ] || [ -e "$LETSENCRYPT_DIR/live/$DOMAIN" ]; then
  if grep -rqsF -- "server_name $DOMAIN;" "$NGINX_DIR/sites-available"; then
    o4o_step "Keeping the certificate for $DOMAIN: another nginx site on this host serves $DOMAIN"
    o4o_result certificate kept
  else
    o4o_step "Deleting the certificate $DOMAIN"
    certbot delete --non-interactive --cert-name "$DOMAIN" --config-dir "$LETSENCRYPT_DIR" \
      --work-dir "$R/var/lib/letsencrypt" --logs-dir "$R/var/log/letsencrypt" ||
      o4o_transient HostTeardownFailed "certbot could not delete the certificate $DOMAIN"
    o4o_result certificate deleted
  fi
else
  o4o_result certificate none
fi

# ---- the local database and role: only those setup-database recorded as this instance's -------------
drop_local_database() {
  local record="$STATE_DIR/database" cluster role database clusters found port status
  cluster="$(sed -n 's/^cluster=//p' "$record")"
  role="$(sed -n 's/^role=//p' "$record")"
  database="$(sed -n 's/^database=//p' "$record")"
  for identifier in "$role" "$database"; do
    case "$identifier" in
      "" | [!a-z_]* | *[!a-z0-9_]*)
        o4o_permanent HostTeardownFailed "${record#"$R"} names '$identifier', not a plain PostgreSQL identifier" ;;
    esac
  done
  clusters="$(pg_lsclusters --no-header 2>/dev/null || true)"
  found="$(awk -v cluster="$cluster" '$1 "/" $2 == cluster { print $3, $4; exit }' <<< "$clusters")"
  if [ -z "$found" ]; then
    o4o_result database "cluster $cluster gone"
    return 0
  fi
  read -r port status <<< "$found"
  if [ "$status" != online ]; then
    o4o_step "Starting PostgreSQL $cluster to drop database $database"
    pg_ctlcluster "${cluster%%/*}" "${cluster#*/}" start ||
      o4o_transient HostTeardownFailed "PostgreSQL $cluster did not start; database $database is still there"
  fi
  local force=""
  if [ "${cluster%%/*}" -ge 13 ] 2>/dev/null; then force=" WITH (FORCE)"; fi
  o4o_step "Dropping database $database and role $role (PostgreSQL $cluster)"
  (cd / && runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -tA -p "$port" \
    -c "DROP DATABASE IF EXISTS $database$force" -c "DROP ROLE IF EXISTS $role") >/dev/null ||
    o4o_transient HostTeardownFailed "Could not drop database $database and role $role"
  o4o_result database "dropped $database"
}
if [ "$DB_MODE" != local ]; then
  o4o_result database "external: not touched"
elif [ -f "$STATE_DIR/database" ]; then
  drop_local_database
else
  o4o_result database "none recorded"
fi

# ---- the directories, as the instance's user (root never deletes through what that user controls) -------
# remove_app_tree DIR: empty DIR as the app user, then remove its own (root-owned) entry.
remove_app_tree() {
  [ -e "$1" ] || [ -L "$1" ] || return 0
  o4o_step "Removing ${1#"$R"}"
  if user_exists; then
    if ! as_app find "$1" -mindepth 1 -delete 2>/dev/null; then
      as_app chmod -R u+w -- "$1"
      as_app find "$1" -mindepth 1 -delete ||
        o4o_transient HostTeardownFailed "Could not remove everything in ${1#"$R"}"
    fi
    rmdir -- "$1"
  else
    # Nobody's any more: the user who owned it is gone.
    rm -rf --one-file-system -- "$1"
  fi
}
remove_app_tree "$BASE_DIR"
remove_app_tree "$APP_HOME"
rm -rf --one-file-system -- "$WEBROOT"

# ---- the user, then root's own record of the instance, last (a retry still finds what is left) ---------
if user_exists; then
  o4o_step "Removing user $APP_USER"
  userdel "$APP_USER" || o4o_transient HostTeardownFailed "userdel $APP_USER failed (does a process still run as it?)"
fi
rm -rf --one-file-system -- "$STATE_DIR"
o4o_result teardown finished
