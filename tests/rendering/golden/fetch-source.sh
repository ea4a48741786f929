#!/usr/bin/env bash
# Stage "source": clone or fetch shop's repository and resolve the revision to a
# commit SHA, reported as ::o4o::result commit=<sha>. Credentials never appear in URLs or on
# command lines: a token, if any, arrives in the environment (O4O_GIT_TOKEN) and reaches git through
# GIT_ASKPASS. git runs as the instance user, in that user's clone. Rendered by o4o-operator. Safe to re-run.
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

REPOSITORY=https://github.com/o4o/platform.git
REVISION=main
# Set only while repository and revision are the ones status recorded it for (empty: resolve REVISION).
PINNED_COMMIT=0123456789abcdef0123456789abcdef01234567
REPO_DIR="$R"/srv/o4o/team-a.shop/repo

askpass=""
errors="$(mktemp)"
trap 'rm -f "$errors" ${askpass:+"$askpass"}' EXIT
if [ -n "${O4O_GIT_TOKEN:-}" ]; then
  askpass="$(as_app mktemp)"
  as_app tee "$askpass" >/dev/null <<'ASKPASS'
#!/bin/sh
case "$1" in
  Username*) printf '%s\n' "${O4O_GIT_USERNAME:-x-access-token}" ;;
  *) printf '%s\n' "$O4O_GIT_TOKEN" ;;
esac
ASKPASS
  as_app chmod 0700 "$askpass"
  export GIT_ASKPASS="$askpass"
fi

# git's own words decide between "fix the spec" and "try again later".
fail_from_git_output() {
  if grep -qiE 'authentication failed|could not read (username|password)|permission denied|repository .* (not found|does not exist)|does not appear to be a git repository|not found$' "$1"; then
    o4o_permanent SourceAccessDenied "The repository refused access or does not exist; check source.repository and its credentials"
  fi
  o4o_transient SourceUnavailable "git could not reach the repository; will retry"
}

[ -d "$(dirname "$REPO_DIR")" ] ||
  o4o_transient RuntimeNotReady "The instance's directory does not exist yet; the runtime stage runs first"
# A clone of another repository is removed: its tags and objects must not answer for this one.
if [ -d "$REPO_DIR/.git" ] && [ "$(as_app git -C "$REPO_DIR" remote get-url origin 2>/dev/null)" != "$REPOSITORY" ]; then
  o4o_step "The repository changed; cloning it afresh"
  as_app rm -rf "$REPO_DIR"
fi
if [ -d "$REPO_DIR/.git" ]; then
  o4o_step "Fetching into the existing clone"
  if ! as_app git -C "$REPO_DIR" fetch --prune --tags --force origin 2> "$errors"; then
    cat "$errors" >&2
    fail_from_git_output "$errors"
  fi
else
  o4o_step "Cloning the repository"
  as_app rm -rf "$REPO_DIR.staging"
  if ! as_app git clone --no-checkout --quiet "$REPOSITORY" "$REPO_DIR.staging" 2> "$errors"; then
    cat "$errors" >&2
    as_app rm -rf "$REPO_DIR.staging"
    fail_from_git_output "$errors"
  fi
  as_app rm -rf "$REPO_DIR"
  as_app mv -T "$REPO_DIR.staging" "$REPO_DIR"
fi

resolve() {
  as_app git -C "$REPO_DIR" rev-parse --verify --quiet "$1^{commit}" 2>/dev/null
}
if [ -n "$PINNED_COMMIT" ]; then
  commit="$(resolve "$PINNED_COMMIT")" ||
    o4o_permanent RevisionNotFound "Commit $PINNED_COMMIT is not in the repository"
else
  commit="$(resolve "refs/remotes/origin/$REVISION" || resolve "refs/tags/$REVISION" || resolve "$REVISION")" ||
    o4o_permanent RevisionNotFound "Revision $REVISION is not a branch, tag or commit of the repository"
fi
as_app git -C "$REPO_DIR" -c advice.detachedHead=false checkout --quiet --force --detach "$commit"
o4o_step "Revision $REVISION is commit $commit"
o4o_result commit "$commit"
