#!/usr/bin/env bash
# Stage "build-site": build the static main site of shop at commit 0123456789abcdef0123456789abcdef01234567
# into its release directory, as spec.build.site says. Rendered by o4o-operator. Safe to re-run: a
# built release is skipped.
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
COMMIT=0123456789abcdef0123456789abcdef01234567
REPO_DIR="$R"/srv/o4o/team-a.shop/repo
RELEASE_DIR="$R"/srv/o4o/team-a.shop/releases/0123456789abcdef0123456789abcdef01234567
OUTPUT=apps/main-site/dist/index.html
BUILT_MARKER="$RELEASE_DIR/.o4o-built-site"
# The marker holds a digest of spec.build's settings for this part: changed settings build again.
BUILD_DIGEST=14cbb4eb8963370e
INSTALL_DIGEST=d52b1cef11043bad
INSTALL_FLAGS=(--frozen-lockfile)

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
  o4o_step "The site of release $COMMIT is already built"
  o4o_result built site
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
# ---- toolchain: the Node.js and pnpm the repository asks for -------------------
# Runs in the release directory. Node.js must satisfy engines.node and .nvmrc (a later release
# of the .nvmrc's major counts); pnpm is installed at the exact version package.json pins
# (packageManager, else devDependencies.pnpm, else volta.pnpm), per instance: by the instance's user
# into its own home (one npm prefix per version), never globally by root, so instances sharing a host
# each build with the pnpm their repository pins. with_pnpm runs a command as that user with that pnpm
# first on PATH (pnpm's scripts that call pnpm get it too).
PNPM_ROOT="$R"/home/o4o-team-a-shop-6b3e3555/.o4o/pnpm
NPM_GLOBAL_CONFIG="$R"/usr/local/etc/npmrc
O4O_NODE_REQUIREMENTS="$(cat <<'JS'
const fs = require('fs');
const clean = (text) => String(text).replace(/[^\x20-\x7e]/g, '?').slice(0, 120);
function parts(text) {
  const m = /^v?(\d+)(?:\.(\d+|[xX*]))?(?:\.(\d+|[xX*]))?(?:-[0-9A-Za-z.-]+)?$/.exec(String(text).trim());
  return m ? [m[1], m[2], m[3]].map((p) => (p === undefined || /[xX*]/.test(p) ? null : Number(p))) : null;
}
function cmp(a, b) {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
  return 0;
}
const next = (p) => (p[1] === null ? [p[0] + 1, 0, 0] : p[2] === null ? [p[0], p[1] + 1, 0] : [p[0], p[1], p[2] + 1]);
function test(v, comparator) {
  if (['', '*', 'x', 'X'].includes(comparator)) return true;
  const m = /^(>=|<=|>|<|=|\^|~)?(.*)$/.exec(comparator);
  const op = m[1] || '=';
  const p = parts(m[2]);
  if (!p) throw new Error(comparator);
  const low = p.map((n) => n ?? 0);
  if (op === '>=') return cmp(v, low) >= 0;
  if (op === '>') return cmp(v, next(p)) >= 0;
  if (op === '<') return cmp(v, low) < 0;
  if (op === '<=') return cmp(v, next(p)) < 0;
  if (op === '~') return cmp(v, low) >= 0 && cmp(v, next([p[0], p[1], null])) < 0;
  if (op === '^') return cmp(v, low) >= 0 && cmp(v, p[0] > 0 || p[1] === null ? [p[0] + 1, 0, 0] : next([p[0], p[1], null])) < 0;
  return cmp(v, low) >= 0 && cmp(v, next(p)) < 0;
}
const satisfies = (v, range) => range.split('||').some((alternative) =>
  alternative.replace(/(>=|<=|>|<|=|\^|~)\s+/g, '$1').trim().split(/\s+/).every((c) => test(v, c)));
const read = (file) => (fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : null);
const wanted = [];
try {
  const engines = JSON.parse(read('package.json') || '{}').engines || {};
  if (typeof engines.node === 'string' && engines.node.trim()) wanted.push([engines.node.trim(), 'engines.node']);
} catch (error) {
  console.log('unreadable package.json: ' + clean(error.message));
  process.exit(0);
}
const nvmrc = (read('.nvmrc') || '').trim();
if (parts(nvmrc)) wanted.push(['^' + nvmrc.replace(/^v/, ''), '.nvmrc']);
const installed = parts(process.argv[1]);
if (!installed || installed.includes(null)) {
  console.log('unreadable installed version ' + clean(process.argv[1]));
  process.exit(0);
}
const failed = [];
for (const [range, source] of wanted) {
  try {
    if (!satisfies(installed, range)) failed.push(clean(range) + ' (' + source + ')');
  } catch (error) {
    console.log('unreadable ' + source + ' ' + clean(range));
    process.exit(0);
  }
}
const stated = wanted.map(([range, source]) => clean(range) + ' (' + source + ')').join(' and ');
console.log(failed.length ? 'unsatisfied ' + failed.join(' and ') : 'ok ' + (stated || 'no stated version'));
JS
)"
O4O_PNPM_PIN="$(cat <<'JS'
const fs = require('fs');
const clean = (text) => String(text).replace(/[^\x21-\x7e]/g, '?').slice(0, 64);
let manifest = {};
try {
  manifest = JSON.parse(fs.readFileSync('package.json', 'utf8'));
} catch (error) {
  console.log('none');
  process.exit(0);
}
const manager = manifest.packageManager;
if (typeof manager === 'string' && manager) {
  console.log('packageManager ' + clean(manager.startsWith('pnpm@') ? manager.slice(5).split('+')[0] : manager));
} else if (typeof (manifest.devDependencies || {}).pnpm === 'string') {
  console.log('devDependencies.pnpm ' + clean(manifest.devDependencies.pnpm));
} else if (typeof (manifest.volta || {}).pnpm === 'string') {
  console.log('volta.pnpm ' + clean(manifest.volta.pnpm));
} else {
  console.log('none');
}
JS
)"

node_installed="$(node --version 2>/dev/null)" ||
  o4o_transient NodeMissing "Node.js is not installed; the runtime stage installs it"
node_verdict="$(as_app node -e "$O4O_NODE_REQUIREMENTS" "$node_installed")"
case "$node_verdict" in
  ok\ *) o4o_step "Node.js $node_installed satisfies ${node_verdict#ok }" ;;
  unsatisfied\ *)
    o4o_permanent NodeVersionUnsupported "The repository requires Node.js ${node_verdict#unsatisfied }; the server has $node_installed" ;;
  *) o4o_permanent NodeRequirementUnreadable "Cannot read the repository's Node.js requirement: $node_verdict" ;;
esac

pin_line="$(as_app node -e "$O4O_PNPM_PIN")"
if [ "$pin_line" = none ]; then
  o4o_permanent PnpmNotPinned "The repository pins no pnpm version (package.json packageManager, devDependencies.pnpm or volta.pnpm); its lockfile needs the pnpm that wrote it"
fi
pin_field="${pin_line%% *}"
pnpm_pin="${pin_line#* }"
if ! [[ "$pnpm_pin" =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]]; then
  o4o_permanent PnpmNotPinned "package.json $pin_field is '$pnpm_pin', not an exact pnpm version such as 10.25.0"
fi
PNPM_PREFIX="$PNPM_ROOT/$pnpm_pin"
with_pnpm() { as_app env "PATH=$PNPM_PREFIX/bin:$PATH" "$@"; }
pnpm_installed=""
if [ -x "$PNPM_PREFIX/bin/pnpm" ]; then
  pnpm_installed="$(as_app "$PNPM_PREFIX/bin/pnpm" --version 2>/dev/null || true)"
fi
if [ "$pnpm_installed" = "$pnpm_pin" ]; then
  o4o_step "pnpm $pnpm_pin (package.json $pin_field) is installed for $APP_USER"
else
  o4o_step "Installing pnpm $pnpm_pin for $APP_USER, pinned by package.json $pin_field (found: ${pnpm_installed:-none})"
  npm_log="$(mktemp)"
  # A global install into the instance's own prefix; npm still reads the server's global npmrc (a proxy).
  if ! as_app npm install --global --prefix "$PNPM_PREFIX" --globalconfig "$NPM_GLOBAL_CONFIG" --no-fund \
      --no-audit --no-update-notifier "pnpm@$pnpm_pin" > "$npm_log" 2>&1; then
    cat "$npm_log" >&2
    if grep -qE 'ETARGET|E404|No matching version' "$npm_log"; then
      rm -f "$npm_log"
      o4o_permanent PnpmVersionUnavailable "pnpm $pnpm_pin (package.json $pin_field) is not in the npm registry"
    fi
    rm -f "$npm_log"
    o4o_transient PnpmInstallFailed "npm could not install pnpm $pnpm_pin; will retry"
  fi
  rm -f "$npm_log"
fi
pnpm_installed="$(with_pnpm pnpm --version 2>/dev/null || true)"
[ "$pnpm_installed" = "$pnpm_pin" ] ||
  o4o_permanent PnpmVersionMismatch "npm installed pnpm $pnpm_pin into $PNPM_PREFIX, but pnpm --version says ${pnpm_installed:-nothing}; another pnpm comes first on PATH"
# ------------------------------------------------------------------------------

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

SITE_PACKAGE=@o4o/main-site-nextgen
SITE_SCRIPT=build
# Build-time variables: Vite bakes them into the site (the API address of this domain).
SITE_ENV=(
  VITE_API_URL=https://shop.example.com
)

o4o_require_script spec.build.site.package "$SITE_PACKAGE" spec.build.site.buildScript "$SITE_SCRIPT"
o4o_step "Building $SITE_PACKAGE and its workspace dependencies ($SITE_SCRIPT)"
with_pnpm env CI=true NODE_ENV=production "${SITE_ENV[@]}" \
  pnpm --filter "$SITE_PACKAGE..." --fail-if-no-match run "$SITE_SCRIPT" ||
  o4o_permanent BuildFailed "Building $SITE_PACKAGE at $COMMIT failed; see the log"
[ -e "$RELEASE_DIR/$OUTPUT" ] ||
  o4o_permanent BuildOutputMissing "spec.build.site.outputDir: the build succeeded but produced no $OUTPUT"
o4o_mark "$BUILD_DIGEST" "$BUILT_MARKER"
o4o_result built site

