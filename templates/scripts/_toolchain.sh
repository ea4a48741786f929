# ---- toolchain: the Node.js and pnpm the repository asks for -------------------
# Runs in the release directory. Node.js must satisfy engines.node and .nvmrc (a later release
# of the .nvmrc's major counts); pnpm is installed at the exact version package.json pins
# (packageManager, else devDependencies.pnpm, else volta.pnpm), per instance: by the instance's user
# into its own home (one npm prefix per version), never globally by root, so instances sharing a host
# each build with the pnpm their repository pins. with_pnpm runs a command as that user with that pnpm
# first on PATH (pnpm's scripts that call pnpm get it too).
PNPM_ROOT="$R"{{ ctx.pnpm_root | shquote }}
NPM_GLOBAL_CONFIG="$R"{{ (ctx.global_prefix ~ "/etc/npmrc") | shquote }}
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
