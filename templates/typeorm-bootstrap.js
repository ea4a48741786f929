'use strict';
// o4o-operator's bootstrap of an EMPTY database for a TypeORM app (spec.database.bootstrap mode synchronize).
// Generic for TypeORM 0.3 apps: it knows nothing of any one app. Run by the configure stage as the app user in
// the release's API directory, with the app's .env loaded, as:  node -e <this> -- <module> <export>
//   <module>  spec.build.api.dataSource.module: the compiled module (CommonJS or ES) exporting the DataSource
//   <export>  spec.build.api.dataSource.export: its export name (`default` for the default export)
// Steps: load the DataSource and initialize it; repair entity metadata that TypeORM's synchronize() cannot
// apply as declared (each repair logged); create the schemas the entities name; synchronize() (the schema from
// the entities, once: it is not idempotent for every app); runMigrations({fake: true}) (every migration the
// data source knows is recorded as applied, without running it, so later runs of the app's own migration
// command run only newer ones); destroy(). Exit 0 on success; on failure exit 1 after a line
// `typeorm-bootstrap: failed at <step>: <message>`. It prints no connection settings.
const path = require('node:path');
const { pathToFileURL } = require('node:url');

const [modulePath, exportName] = process.argv.slice(1);
const log = (message) => console.log(`typeorm-bootstrap: ${message}`);
let step = 'load';

function isDataSource(value) {
  return Boolean(value) && typeof value.initialize === 'function' && typeof value.synchronize === 'function' &&
    typeof value.runMigrations === 'function';
}

async function loadDataSource() {
  const file = path.resolve(process.cwd(), modulePath);
  const namespace = await import(pathToFileURL(file).href);
  const candidates = exportName === 'default'
    ? [namespace.default, namespace.default && namespace.default.default]
    : [namespace[exportName], namespace.default && namespace.default[exportName]];
  const found = candidates.find(isDataSource);
  if (!found) {
    throw new Error(`${modulePath} has no export ${exportName} that is a TypeORM DataSource ` +
                    `(exports: ${Object.keys(namespace).join(', ') || 'none'})`);
  }
  return found;
}

const names = (columns) => (columns || []).map((column) => column.databaseName).sort().join(',');

// A string default already in single quotes ("'draft'") is quoted again by TypeORM and fails as SQL.
function unquoteDefaults(metadata) {
  let repaired = 0;
  for (const column of metadata.columns || []) {
    if (typeof column.default === 'string' && /^'[^']*'$/.test(column.default)) {
      column.default = column.default.slice(1, -1);
      repaired += 1;
    }
  }
  return repaired;
}

// The same index declared twice makes synchronize() create it twice.
function dropDuplicateIndices(metadata) {
  const seen = new Set();
  const before = (metadata.indices || []).length;
  metadata.indices = (metadata.indices || []).filter((index) => {
    const key = index.name || `${index.isUnique ? 'unique:' : ''}${names(index.columns)}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  return before - metadata.indices.length;
}

// PostgreSQL refuses a foreign key whose referenced columns carry no primary key or unique constraint.
function referenceable(target, columns) {
  const wanted = names(columns);
  if (wanted === names(target.primaryColumns)) return true;
  if ((target.uniques || []).some((unique) => names(unique.columns) === wanted)) return true;
  return (target.indices || []).some((index) => index.isUnique && !index.where && names(index.columns) === wanted);
}

function dropUnreferenceableForeignKeys(metadata) {
  const before = (metadata.foreignKeys || []).length;
  metadata.foreignKeys = (metadata.foreignKeys || []).filter((key) => !key.referencedEntityMetadata ||
    referenceable(key.referencedEntityMetadata, key.referencedColumns));
  const dropped = before - metadata.foreignKeys.length;
  for (const relation of metadata.relations || []) {
    if (Array.isArray(relation.foreignKeys)) {
      relation.foreignKeys = relation.foreignKeys.filter((key) => metadata.foreignKeys.includes(key));
    }
  }
  return dropped;
}

function repairMetadata(dataSource) {
  const totals = { quotedDefaults: 0, duplicateIndices: 0, foreignKeysWithoutUniqueTarget: 0 };
  for (const metadata of dataSource.entityMetadatas || []) {
    totals.quotedDefaults += unquoteDefaults(metadata);
    totals.duplicateIndices += dropDuplicateIndices(metadata);
    totals.foreignKeysWithoutUniqueTarget += dropUnreferenceableForeignKeys(metadata);
  }
  for (const [what, count] of Object.entries(totals)) {
    if (count) log(`repaired ${count} entity metadata item(s): ${what}`);
  }
}

async function createSchemas(dataSource) {
  const schemas = new Set((dataSource.entityMetadatas || []).map((metadata) => metadata.schema).filter(Boolean));
  const fallback = dataSource.options && dataSource.options.schema;
  if (fallback) schemas.add(fallback);
  for (const schema of [...schemas].sort()) {
    await dataSource.query(`CREATE SCHEMA IF NOT EXISTS "${String(schema).replace(/"/g, '""')}"`);
  }
  if (schemas.size) log(`schemas: ${[...schemas].sort().join(', ')}`);
}

async function main() {
  if (!modulePath || !exportName) throw new Error('usage: node -e <helper> -- <module> <export>');
  const dataSource = await loadDataSource();
  step = 'initialize';
  if (!dataSource.isInitialized) await dataSource.initialize();
  try {
    step = 'synchronize';
    repairMetadata(dataSource);
    await createSchemas(dataSource);
    await dataSource.synchronize();
    log(`synchronized ${(dataSource.entityMetadatas || []).length} entities`);
    step = 'record migrations';
    const returned = await dataSource.runMigrations({ transaction: 'all', fake: true });
    // TypeORM 0.3 returns no migration for a fake run; on an empty database every known migration was pending.
    const recorded = Array.isArray(dataSource.migrations) ? dataSource.migrations.length : returned.length;
    log(`recorded ${recorded} migration(s) as applied without running them`);
  } finally {
    await dataSource.destroy().catch(() => undefined);
  }
}

main().then(() => process.exit(0)).catch((error) => {
  console.error(error && error.stack ? error.stack : String(error));
  console.error(`typeorm-bootstrap: failed at ${step}: ${error && error.message ? error.message : String(error)}`);
  process.exit(1);
});
