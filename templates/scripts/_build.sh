{% macro build(part, package, output) %}
COMMIT={{ ctx.commit | shquote }}
REPO_DIR="$R"{{ ctx.repo_dir | shquote }}
RELEASE_DIR="$R"{{ ctx.release_dir(ctx.commit) | shquote }}
PACKAGE={{ package | shquote }}
OUTPUT={{ output | shquote }}
BUILT_MARKER="$RELEASE_DIR/.o4o-built-{{ part }}"

if [ -f "$BUILT_MARKER" ] && [ -e "$RELEASE_DIR/$OUTPUT" ]; then
  o4o_step "The {{ part }} of release $COMMIT is already built"
  o4o_result built {{ part }}
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
o4o_result built {{ part }}
{% endmacro %}
