/**
 * The API's data source, as O4O's database/connection.ts exports `AppDataSource`: the fixture's stand-in for a
 * TypeORM DataSource (the fixture's only registry packages are pg and typescript), with the part of TypeORM's
 * API a bootstrap uses and TypeORM's behaviour there:
 * - `entityMetadatas` (./entities), `options`, `isInitialized`, `initialize()`, `query()`, `destroy()`;
 * - `synchronize()`: the schema from the entity metadata in one transaction, as TypeORM's schema builder makes it
 *   (string defaults quoted, so an already quoted one fails; no CREATE SCHEMA; every declared index created;
 *   foreign keys added last), and not idempotent: a second run fails on the tables that exist;
 * - `runMigrations({fake})`: the migrations of dist/database/migrations/*.js (from the working directory, as
 *   O4O's production setting), ordered by the 13-digit timestamp ending their class names, recorded in
 *   typeorm_migrations; with `fake: true` each pending one is recorded without running (and, as TypeORM 0.3 does,
 *   none is returned); `migrations` lists what `initialize()` loaded.
 * The connection is read as O4O's: DB_HOST, DB_PORT, DB_USERNAME, DB_PASSWORD, DB_NAME, TLS forced under
 * NODE_ENV=production unless DB_HOST is a Cloud SQL socket.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Client } from 'pg';
import { entities, type ColumnMetadata, type EntityMetadata } from './entities';

const MIGRATIONS_TABLE = 'typeorm_migrations';

interface Migration {
  name: string;
  timestamp: number;
  instance: { up(queryRunner: { query(sql: string, params?: unknown[]): Promise<unknown> }): Promise<void> };
}

const quote = (name: string) => `"${name.replace(/"/g, '""')}"`;
const table = (metadata: EntityMetadata) => (metadata.schema ? `${quote(metadata.schema)}.` : '') + quote(metadata.tableName);
const list = (columns: ColumnMetadata[]) => columns.map((column) => quote(column.databaseName)).join(', ');

function defaultSql(value: ColumnMetadata['default']): string {
  if (typeof value === 'function') return value();
  if (typeof value === 'string') return `'${value}'`;  // as TypeORM's normalizeDefault: no escaping
  return String(value);
}

function columnSql(column: ColumnMetadata): string {
  let type = column.type;
  if (column.generationStrategy === 'increment') type = 'SERIAL';
  let sql = `${quote(column.databaseName)} ${type}`;
  if (!column.isNullable && !column.isPrimary) sql += ' NOT NULL';
  if (column.generationStrategy === 'uuid') sql += ' DEFAULT gen_random_uuid()';
  else if (column.default !== undefined) sql += ` DEFAULT ${defaultSql(column.default)}`;
  return sql;
}

function settings(): Record<string, unknown> {
  const env = process.env;
  const production = (env.NODE_ENV || 'development') === 'production';
  return { host: env.DB_HOST || 'localhost', port: parseInt(env.DB_PORT || '5432', 10), user: env.DB_USERNAME,
           password: env.DB_PASSWORD, database: env.DB_NAME,
           ...(production && !env.DB_HOST?.startsWith('/cloudsql/') ? { ssl: { rejectUnauthorized: false } } : {}) };
}

function loadMigrations(): Migration[] {
  const directory = path.resolve(process.cwd(), 'dist', 'database', 'migrations');
  const files: string[] = fs.existsSync(directory) ? fs.readdirSync(directory) : [];
  const found: Migration[] = [];
  for (const file of files.filter((name) => name.endsWith('.js')).sort()) {
    for (const value of Object.values(require(path.join(directory, file)))) {
      if (typeof value !== 'function') continue;
      const name = (value as { name: string }).name;
      const match = /(\d{13})$/.exec(name);
      if (!match) throw new Error(`${name} migration name is wrong. Migration class name should have a JavaScript timestamp appended.`);
      found.push({ name, timestamp: Number(match[1]), instance: new (value as any)() });
    }
  }
  return found.sort((a, b) => a.timestamp - b.timestamp);
}

export class FixtureDataSource {
  readonly options = { type: 'postgres', migrationsTableName: MIGRATIONS_TABLE } as { type: string; schema?: string };
  entityMetadatas: EntityMetadata[] = entities;
  migrations: Migration['instance'][] = [];
  isInitialized = false;
  private client: any = null;

  async initialize(): Promise<this> {
    this.client = new Client(settings());
    await this.client.connect();
    this.migrations = loadMigrations().map((migration) => migration.instance);  // as TypeORM loads them
    this.isInitialized = true;
    return this;
  }

  async query(sql: string, params?: unknown[]): Promise<any[]> {
    if (!this.client) throw new Error('DataSource is not initialized');
    return (await this.client.query(sql, params)).rows;
  }

  async synchronize(): Promise<void> {
    const statements: string[] = [];
    for (const metadata of this.entityMetadatas) {
      const parts = metadata.columns.map(columnSql);
      parts.push(`PRIMARY KEY (${list(metadata.primaryColumns)})`);
      for (const unique of metadata.uniques) parts.push(`CONSTRAINT ${quote(unique.name)} UNIQUE (${list(unique.columns)})`);
      statements.push(`CREATE TABLE ${table(metadata)} (${parts.join(', ')})`);
      for (const index of metadata.indices) {
        statements.push(`CREATE ${index.isUnique ? 'UNIQUE ' : ''}INDEX ${quote(index.name)} ON ${table(metadata)} ` +
                        `(${list(index.columns)})${index.where ? ` WHERE ${index.where}` : ''}`);
      }
    }
    for (const metadata of this.entityMetadatas) {
      for (const key of metadata.foreignKeys) {
        statements.push(`ALTER TABLE ${table(metadata)} ADD CONSTRAINT ${quote(key.name)} FOREIGN KEY ` +
                        `(${list(key.columns)}) REFERENCES ${table(key.referencedEntityMetadata)} ` +
                        `(${list(key.referencedColumns)})${key.onDelete ? ` ON DELETE ${key.onDelete}` : ''}`);
      }
    }
    await this.query('BEGIN');
    try {
      for (const statement of statements) await this.query(statement);
      await this.query('COMMIT');
    } catch (error) {
      await this.query('ROLLBACK');
      throw error;
    }
  }

  async runMigrations(options: { fake?: boolean; transaction?: string } = {}): Promise<Migration[]> {
    await this.query(`CREATE TABLE IF NOT EXISTS ${quote(MIGRATIONS_TABLE)} (
      "id" SERIAL NOT NULL PRIMARY KEY, "timestamp" bigint NOT NULL, "name" character varying NOT NULL)`);
    const done = new Set((await this.query(`SELECT "name" FROM ${quote(MIGRATIONS_TABLE)}`)).map((row) => row.name));
    const pending = loadMigrations().filter((migration) => !done.has(migration.name));
    const queryRunner = { query: (sql: string, params?: unknown[]) => this.query(sql, params) };
    await this.query('BEGIN');
    try {
      for (const migration of pending) {
        if (!options.fake) await migration.instance.up(queryRunner);
        await this.query(`INSERT INTO ${quote(MIGRATIONS_TABLE)}("timestamp", "name") VALUES ($1, $2)`,
                         [migration.timestamp, migration.name]);
      }
      await this.query('COMMIT');
    } catch (error) {
      await this.query('ROLLBACK');
      throw error;
    }
    return options.fake ? [] : pending;  // as TypeORM 0.3: a fake run returns no migration
  }

  async destroy(): Promise<void> {
    const client = this.client;
    this.client = null;
    this.isInitialized = false;
    if (client) await client.end();
  }
}

export const AppDataSource = new FixtureDataSource();
export default AppDataSource;
