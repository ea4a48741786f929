# ---- nginx site selection ----------------------------------------------------
NGINX_DIR="$R"{{ ctx.nginx_dir | shquote }}
SITE_HTTP="$R"{{ ctx.nginx_site_path(false) | shquote }}
SITE_HTTPS="$R"{{ ctx.nginx_site_path(true) | shquote }}
SITE_ENABLED="$R"{{ ctx.nginx_enabled_path | shquote }}
# shellcheck disable=SC2034 # read by configure and issue-cert, not by every script
CERTIFICATE="$R"{{ ctx.certificate_path | shquote }}
NGINX_APPLIED="$R"{{ ctx.nginx_applied_marker | shquote }}

# enable_site http|https: point sites-enabled at that variant, test and reload nginx if anything changed.
enable_site() {
  local variant="$1" source link applied_now previous changed=0
  if [ "$variant" = https ]; then source="$SITE_HTTPS"; else source="$SITE_HTTP"; fi
  [ -f "$source" ] || o4o_transient ConfigMissing "The $variant nginx site has not been uploaded yet"
  link="../sites-available/$(basename "$source")"
  install -d -m 0755 "$NGINX_DIR/sites-enabled"
  previous="$(readlink "$SITE_ENABLED" 2>/dev/null || true)"
  if [ "$previous" != "$link" ]; then
    o4o_relink "$link" "$SITE_ENABLED"
    changed=1
  fi
  if [ -e "$NGINX_DIR/sites-enabled/default" ] || [ -L "$NGINX_DIR/sites-enabled/default" ]; then
    o4o_step "Disabling the default nginx site"
    rm -f "$NGINX_DIR/sites-enabled/default"
    changed=1
  fi
  applied_now="$variant $(sha256sum < "$source" | cut -d ' ' -f 1)"
  if [ "$changed" = 0 ] && [ "$(cat "$NGINX_APPLIED" 2>/dev/null || true)" = "$applied_now" ]; then
    o4o_step "nginx already serves the $variant site"
  else
    if ! nginx -t; then
      # Leave nginx as it was, so that its next reload or reboot still works.
      if [ -n "$previous" ]; then o4o_relink "$previous" "$SITE_ENABLED"; else rm -f "$SITE_ENABLED"; fi
      o4o_permanent NginxConfigInvalid "nginx rejected the $variant site; the previous site stays enabled"
    fi
    if systemctl is-active --quiet nginx; then systemctl reload nginx; fi
    printf '%s\n' "$applied_now" > "$NGINX_APPLIED"
    o4o_step "nginx now serves the $variant site"
  fi
  if ! systemctl is-active --quiet nginx; then
    o4o_step "Starting nginx: it was not running"
    systemctl start nginx
  fi
  o4o_result nginxSite "$variant"
}
# ------------------------------------------------------------------------------
