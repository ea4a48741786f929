{% macro prepare(part, output, digest) %}
COMMIT={{ ctx.commit | shquote }}
REPO_DIR="$R"{{ ctx.repo_dir | shquote }}
RELEASE_DIR="$R"{{ ctx.release_dir(ctx.commit) | shquote }}
OUTPUT={{ output | shquote }}
BUILT_MARKER="$RELEASE_DIR/.o4o-built-{{ part }}"
# The marker holds a digest of spec.build's settings for this part: changed settings build again.
BUILD_DIGEST={{ digest | shquote }}
INSTALL_DIGEST={{ ctx.install_digest | shquote }}
INSTALL_FLAGS=({% for flag in ctx.install_flags %}{{ " " if not loop.first else "" }}{{ flag | shquote }}{% endfor %})

# shellcheck disable=SC2016 # $1 and $2 belong to the inner sh
o4o_mark() { as_app sh -c 'printf "%s\n" "$1" > "$2"' o4o-mark "$1" "$2"; }
o4o_marked() { [ "$(cat "$2" 2>/dev/null || true)" = "$1" ]; }

# pnpm exits 0 when a filter matches nothing or no selected package has the script, so both are
# checked first: o4o_require_script <package field> <package> <script field> <script>.
O4O_HAS_SCRIPT="$(cat <<'JS'
const scripts = JSON.parse(require('fs').readFileSync('package.json', 'utf8')).scripts || {};
const name = process.argv[1];
const present = Object.prototype.hasOwnProperty.call(scripts, name) && typeof scripts[name] === 'string';
console.log(present ? 'o4o-script=present' : 'o4o-script=absent');
JS
)"
o4o_require_script() {
  local output
  output="$(with_pnpm pnpm --filter "$2" --fail-if-no-match exec node -e "$O4O_HAS_SCRIPT" "$4" 2>&1)" || true
  case "$output" in
    *o4o-script=present*) return 0 ;;
    *o4o-script=absent*)
      o4o_permanent ScriptNotFound "$3: package $2 has no \"$4\" script in its package.json" ;;
    *"No projects matched"*)
      o4o_permanent PackageNotFound "$1: no workspace package is named $2 (pnpm --filter matched nothing)" ;;
  esac
  printf '%s\n' "$output" >&2
  o4o_transient BuildToolFailed "pnpm could not look up package $2; see the log"
}

if o4o_marked "$BUILD_DIGEST" "$BUILT_MARKER" && [ -e "$RELEASE_DIR/$OUTPUT" ]; then
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
{% include "scripts/_toolchain.sh" %}

if o4o_marked "$INSTALL_DIGEST" .o4o-installed; then
  o4o_step "Dependencies are already installed"
else
  [ -f pnpm-lock.yaml ] || o4o_permanent LockfileMissing "The repository has no pnpm-lock.yaml; builds must be reproducible"
  o4o_step "Installing dependencies: pnpm install ${INSTALL_FLAGS[*]}"
  # Native modules (O4O's sqlite3 and better-sqlite3) that find no prebuilt binary are compiled by node-gyp
  # against the headers of the Node.js that runs them (in its release tarball's include/), instead of headers
  # downloaded from nodejs.org, which a server may not reach.
  NODE_HEADERS_DIR="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")"
  [ -f "$NODE_HEADERS_DIR/include/node/common.gypi" ] || NODE_HEADERS_DIR=""
  with_pnpm env CI=true ${NODE_HEADERS_DIR:+"npm_config_nodedir=$NODE_HEADERS_DIR"} pnpm install "${INSTALL_FLAGS[@]}"
  o4o_mark "$INSTALL_DIGEST" .o4o-installed
fi
{% endmacro %}

{% macro finish(part, field) %}
[ -e "$RELEASE_DIR/$OUTPUT" ] ||
  o4o_permanent BuildOutputMissing "{{ field }}: the build succeeded but produced no $OUTPUT"
o4o_mark "$BUILD_DIGEST" "$BUILT_MARKER"
o4o_result built {{ part }}
{% endmacro %}
