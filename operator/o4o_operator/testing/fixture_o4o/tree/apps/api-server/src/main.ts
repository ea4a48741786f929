/**
 * The fixture's API server (the `build:api` bundle's dist/main.js), answering as O4O's does where the operator
 * looks: it exits with "Missing required environment variables: JWT_SECRET" under NODE_ENV=production without
 * one (env-validator.ts); it starts even when the database is down (GRACEFUL_STARTUP, the default) and then
 * reports it in /health and /api/health, which answer 200 with {status: 'alive', database: {status}} where
 * status is 'healthy' (SELECT 1 answered), 'not_initialized' (never connected) or 'unhealthy' (connected once,
 * failing now); the admin login and apps API are in routes/. It listens on $PORT (default 8080).
 */
import * as http from 'node:http';
import { PLATFORM, type DatabaseStatus, type HealthBody } from '@o4o/types';
import { apiDbSettings, makePool } from './lib/db';
import { json, readBody, send, type Reply } from './lib/http';
import { apps } from './routes/apps';
import { login, requireAdmin } from './routes/auth';

const NODE_ENV = process.env.NODE_ENV || 'development';
const missing = ['JWT_SECRET'].filter((name) => !process.env[name]);
if (missing.length && NODE_ENV === 'production') {
  console.error(`Missing required environment variables: ${missing.join(', ')}\n` +
                'Please set these in your .env file or environment.');
  process.exit(1);
}
const JWT_SECRET = process.env.JWT_SECRET || 'development-only-jwt-secret';

const pool = makePool(apiDbSettings());
pool.on('error', (error: Error) => console.error(`database pool error: ${error.message}`));
let initialized = false;

async function initialize(): Promise<void> {
  try {
    await pool.query('SELECT 1');
    initialized = true;
    console.log(`database connected (${process.env.DB_HOST || 'localhost'}/${process.env.DB_NAME || ''})`);
  } catch (error: any) {
    // GRACEFUL_STARTUP: keep serving; the health body says not_initialized.
    console.error(`database connection failed, continuing without it: ${error.message}`);
  }
}

async function health(): Promise<HealthBody> {
  let status: DatabaseStatus = 'not_initialized';
  let error: string | undefined = 'Database connection not initialized (GRACEFUL_STARTUP mode)';
  if (initialized) {
    try {
      await pool.query('SELECT 1');
      status = 'healthy';
      error = undefined;
    } catch (failure: any) {
      status = 'unhealthy';
      error = failure.message || 'Database connection failed';
    }
  }
  return { status: 'alive', timestamp: new Date().toISOString(), uptime: process.uptime(),
           version: process.env.npm_package_version || '0.5.0', environment: NODE_ENV, database: { status, error } };
}

async function route(req: any): Promise<Reply> {
  const path = String(req.url || '/').split('?')[0];
  const method = String(req.method || 'GET');
  if (method === 'GET' && ['/health', '/api/health', '/health/live'].includes(path)) return json(200, await health());
  if (method === 'GET' && path === '/api') return json(200, { platform: PLATFORM, status: 'ok' });
  if (path === '/api/v1/auth/login' && method === 'POST') {
    const body = await readBody(req);
    if (body === null) return json(400, { success: false, error: 'Invalid JSON body' });
    return login(pool, JWT_SECRET, req, body);
  }
  if (path === '/api/v1/admin/apps' || path.startsWith('/api/v1/admin/apps/')) {
    const denied = await requireAdmin(pool, JWT_SECRET, req).catch(() => json(500, {
      success: false, error: 'Internal server error', code: 'INTERNAL_ERROR' }));
    if (denied) return denied;
    const body = method === 'POST' ? await readBody(req) : {};
    return apps(pool, method, path.slice('/api/v1/admin/apps'.length), body || {});
  }
  return json(404, { success: false, error: 'Route not found', code: 'ROUTE_NOT_FOUND', path });
}

const port = Number(process.env.PORT || 8080);
const server = http.createServer((req: any, res: any) => {
  route(req).then((reply) => send(res, reply)).catch((error: any) => {
    console.error(`unhandled: ${error.message}`);
    send(res, json(500, { success: false, error: 'Internal server error', code: 'INTERNAL_ERROR' }));
  });
});
server.listen(port, process.env.HOST || '0.0.0.0', () => {
  console.log(`api listening on ${process.env.HOST || '0.0.0.0'}:${port} (${NODE_ENV})`);
  void initialize();
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => pool.end().finally(() => process.exit(0))));
}
