'use strict';
// The fixture's stand-in for tsup (O4O's `build:api`): like tsup's `clean`, it empties dist/ first, so whatever
// `build` left there (dist/database/migrations) is gone unless the deployer keeps it across this step; then it
// emits the entry points (main, migrate, create-admin) and what they import, and nothing else.
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const root = path.resolve(__dirname, '..');
fs.rmSync(path.join(root, 'dist'), { recursive: true, force: true });
const tsc = require.resolve('typescript/bin/tsc', { paths: [root] });
execFileSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.bundle.json')], { stdio: 'inherit', cwd: root });
for (const entry of ['main.js', 'migrate.js', 'create-admin.js']) {
  if (!fs.existsSync(path.join(root, 'dist', entry))) {
    console.error(`bundle: dist/${entry} was not produced`);
    process.exit(1);
  }
}
console.log('bundle: dist/main.js dist/migrate.js dist/create-admin.js');
