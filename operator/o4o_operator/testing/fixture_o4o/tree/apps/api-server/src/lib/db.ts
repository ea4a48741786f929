// The API's database settings, read as O4O's database/connection.ts reads them: DB_HOST, DB_PORT, DB_USERNAME,
// DB_PASSWORD, DB_NAME (DATABASE_URL is never read), and TLS forced ({rejectUnauthorized: false}) when
// NODE_ENV=production unless DB_HOST is a Cloud SQL socket (/cloudsql/...).
import { Pool } from 'pg';

export interface DbSettings {
  host?: string;
  port: number;
  user?: string;
  password?: string;
  database?: string;
  ssl?: { rejectUnauthorized: boolean };
}

export function apiDbSettings(): DbSettings {
  const env = process.env;
  const production = (env.NODE_ENV || 'development') === 'production';
  const settings: DbSettings = {
    host: env.DB_HOST || 'localhost',
    port: parseInt(env.DB_PORT || '5432', 10),
    user: env.DB_USERNAME,
    password: env.DB_PASSWORD,
    database: env.DB_NAME,
  };
  if (production && !env.DB_HOST?.startsWith('/cloudsql/')) {
    settings.ssl = { rejectUnauthorized: false };
  }
  return settings;
}

export function makePool(settings: DbSettings): any {
  return new Pool({ ...settings, max: 5, connectionTimeoutMillis: 10000 });
}
