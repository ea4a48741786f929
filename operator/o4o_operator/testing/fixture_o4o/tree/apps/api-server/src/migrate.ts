/**
 * migrate.ts - the migration-only entry point, as O4O's: `node dist/migrate.js`, exit 0 when every pending
 * migration applied, 1 on a migration or connection failure. Migrations are read from
 * <dist>/database/migrations/*.js (next to this file, as O4O's join(__dirname, 'database', 'migrations', '*.js')),
 * recorded in typeorm_migrations (TypeORM's columns), each in its own transaction (transaction: 'each').
 * Like O4O's migrate.ts it passes no TLS settings. It starts no HTTP server.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Client } from 'pg';

const log = {
  info: (msg: string) => console.log(`[MIGRATE] ${new Date().toISOString()} INFO: ${msg}`),
  error: (msg: string) => console.error(`[MIGRATE] ${new Date().toISOString()} ERROR: ${msg}`),
};

interface Migration {
  name: string;
  timestamp: number;
  instance: { up(queryRunner: { query(sql: string, params?: unknown[]): Promise<unknown> }): Promise<void> };
}

function settings(): Record<string, unknown> {
  const { DB_HOST, DB_USERNAME, DB_PASSWORD, DB_NAME } = process.env;
  if (!DB_HOST || !DB_USERNAME || !DB_PASSWORD || !DB_NAME) {
    throw new Error(
      `Missing required database environment variables.\n` +
      `  DB_HOST: ${DB_HOST ? 'SET' : 'MISSING'}\n` +
      `  DB_USERNAME: ${DB_USERNAME ? 'SET' : 'MISSING'}\n` +
      `  DB_PASSWORD: ${DB_PASSWORD ? 'SET' : 'MISSING'}\n` +
      `  DB_NAME: ${DB_NAME ? 'SET' : 'MISSING'}`);
  }
  log.info(`  - Host: ${DB_HOST.startsWith('/cloudsql/') ? 'Cloud SQL Socket' : DB_HOST}`);
  log.info(`  - Database: ${DB_NAME}`);
  return { host: DB_HOST, port: parseInt(process.env.DB_PORT || '5432', 10), user: DB_USERNAME,
           password: DB_PASSWORD, database: DB_NAME };
}

function loadMigrations(): Migration[] {
  const directory = path.join(__dirname, 'database', 'migrations');
  const files: string[] = fs.existsSync(directory) ? fs.readdirSync(directory) : [];
  const found: Migration[] = [];
  for (const file of files.filter((name) => name.endsWith('.js')).sort()) {
    const exported = require(path.join(directory, file));
    for (const value of Object.values(exported)) {
      if (typeof value !== 'function') continue;
      const name = (value as { name: string }).name;
      const match = /(\d{13})$/.exec(name);
      if (!match) throw new Error(`${name} migration name is wrong. Migration class name should have a JavaScript timestamp appended.`);
      found.push({ name, timestamp: Number(match[1]), instance: new (value as any)() });
    }
  }
  return found.sort((a, b) => a.timestamp - b.timestamp);
}

async function runMigrations(): Promise<void> {
  log.info('Step 1: Creating database connection...');
  const client = new Client(settings());
  try {
    log.info('Step 2: Connecting to database...');
    await client.connect();
    log.info('Database connection established');
    await client.query(`CREATE TABLE IF NOT EXISTS "typeorm_migrations" (
      "id" SERIAL NOT NULL PRIMARY KEY, "timestamp" bigint NOT NULL, "name" character varying NOT NULL)`);
    const done = new Set((await client.query('SELECT "name" FROM "typeorm_migrations"')).rows.map((row: any) => row.name));
    const pending = loadMigrations().filter((migration) => !done.has(migration.name));
    log.info(pending.length ? 'Pending migrations detected' : 'No pending migrations');
    log.info('Step 4: Running migrations...');
    const queryRunner = { query: async (sql: string, params?: unknown[]) => (await client.query(sql, params)).rows };
    for (const migration of pending) {
      await client.query('BEGIN');
      try {
        await migration.instance.up(queryRunner);
        await client.query('INSERT INTO "typeorm_migrations"("timestamp", "name") VALUES ($1, $2)',
                           [migration.timestamp, migration.name]);
        await client.query('COMMIT');
        log.info(`Migration ${migration.name} has been executed successfully.`);
      } catch (error) {
        await client.query('ROLLBACK');
        throw error;
      }
    }
    log.info('Migration completed successfully!');
    log.info(`  - Migrations executed: ${pending.length}`);
  } finally {
    await client.end().catch(() => undefined);
  }
}

runMigrations().then(() => {
  log.info('Migration Job - SUCCESS');
  process.exit(0);
}).catch((error: any) => {
  log.error('Migration Job - FAILED');
  log.error(`Error message: ${error && error.message ? error.message : String(error)}`);
  process.exit(1);
});
