'use strict';
// The fixture's stand-in for tsup (O4O's `build:api`). With no arguments, like tsup with its configuration: it
// empties dist/ first (`clean`), so whatever `build` left there (dist/database/migrations) is gone unless the
// deployer keeps it across this step; then it emits the entry points (main, migrate, create-admin, seed) and
// what they import, and nothing else. With arguments, like tsup's command line (`tsup <entry> --out-dir <dir>`):
// that one entry and what it imports into <dir>, emptied first, the rest of dist/ untouched (how O4O's data
// source is bundled for a bootstrap).
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const root = path.resolve(__dirname, '..');
const tsc = require.resolve('typescript/bin/tsc', { paths: [root] });
const args = process.argv.slice(2);

if (args.length) {
  const outIndex = args.indexOf('--out-dir');
  const entry = args.find((arg, index) => !arg.startsWith('-') && index !== outIndex + 1);
  if (!entry || outIndex < 0 || !args[outIndex + 1]) {
    console.error('usage: node scripts/bundle.js <entry.ts> --out-dir <dir>');
    process.exit(2);
  }
  const outDir = path.resolve(root, args[outIndex + 1]);
  fs.rmSync(outDir, { recursive: true, force: true });
  const config = path.join(root, '.bundle-entry.tsconfig.json');
  fs.writeFileSync(config, JSON.stringify({
    extends: '../../tsconfig.base.json',
    compilerOptions: { rootDir: path.dirname(path.resolve(root, entry)), outDir },
    files: ['src/shims.d.ts', entry],
  }));
  try {
    execFileSync(process.execPath, [tsc, '-p', config], { stdio: 'inherit', cwd: root });
  } finally {
    fs.rmSync(config, { force: true });
  }
  const emitted = path.join(outDir, path.basename(entry).replace(/\.ts$/, '.js'));
  if (!fs.existsSync(emitted)) {
    console.error(`bundle: ${path.relative(root, emitted)} was not produced`);
    process.exit(1);
  }
  console.log(`bundle: ${path.relative(root, emitted)}`);
  process.exit(0);
}

fs.rmSync(path.join(root, 'dist'), { recursive: true, force: true });
execFileSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.bundle.json')], { stdio: 'inherit', cwd: root });
for (const entry of ['main.js', 'migrate.js', 'create-admin.js', 'seed.js']) {
  if (!fs.existsSync(path.join(root, 'dist', entry))) {
    console.error(`bundle: dist/${entry} was not produced`);
    process.exit(1);
  }
}
console.log('bundle: dist/main.js dist/migrate.js dist/create-admin.js dist/seed.js');
