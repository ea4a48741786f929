#!/usr/bin/env bash
# Stage "source": clone or fetch {{ ctx.instance_name }}'s repository and resolve the revision to a
# commit SHA, reported as ::o4o::result commit=<sha>. Credentials never appear in URLs or on
# command lines: a token, if any, arrives in the environment (O4O_GIT_TOKEN) and reaches git through
# GIT_ASKPASS. git runs as the instance user, in that user's clone. Rendered by o4o-operator. Safe to re-run.
set -euo pipefail
{% include "scripts/_common.sh" %}

REPOSITORY={{ ctx.repository | shquote }}
REVISION={{ ctx.revision | shquote }}
# Set only while repository and revision are the ones status recorded it for (empty: resolve REVISION).
PINNED_COMMIT={{ (ctx.commit or "") | shquote }}
REPO_DIR="$R"{{ ctx.repo_dir | shquote }}

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
