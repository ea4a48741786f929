{% macro build(part, package, output) %}
COMMIT={{ ctx.commit | shquote }}
APP_USER={{ ctx.app_user | shquote }}
REPO_DIR="$R"{{ ctx.repo_dir | shquote }}
RELEASE_DIR="$R"{{ ctx.release_dir(ctx.commit) | shquote }}
PACKAGE={{ package | shquote }}
OUTPUT={{ output | shquote }}
BUILT_MARKER="$RELEASE_DIR/.o4o-built-{{ part }}"

as_app() { runuser -u "$APP_USER" -- "$@"; }

if [ -f "$BUILT_MARKER" ] && [ -e "$RELEASE_DIR/$OUTPUT" ]; then
  o4o_step "The {{ part }} of release $COMMIT is already built"
  o4o_result built {{ part }}
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
o4o_result built {{ part }}
{% endmacro %}
