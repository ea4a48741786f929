// /api/v1/admin/apps as O4O's routes/admin/apps.routes.ts answers it, state in app_registry (AppManager's rows):
// GET /market -> {apps: catalog}; GET / -> {apps: installed}; GET /:appId -> {app} | 404;
// POST /install (installs, then activates) | /activate | /deactivate | /uninstall with {appId}.
import { APPS_CATALOG, MANIFESTS, getCatalogItem } from '../apps/catalog';
import { json, Reply } from '../lib/http';

const INTERNAL = { success: false, error: 'Internal server error', code: 'INTERNAL_ERROR' };

async function find(pool: any, appId: string): Promise<any> {
  return (await pool.query('SELECT * FROM "app_registry" WHERE "appId" = $1', [appId])).rows[0];
}

async function setStatus(pool: any, appId: string, status: string): Promise<void> {
  if (!(await find(pool, appId))) throw new Error(`App ${appId} is not installed`);
  await pool.query('UPDATE "app_registry" SET "status" = $2, "updatedAt" = now() WHERE "appId" = $1', [appId, status]);
}

export async function apps(pool: any, method: string, rest: string, body: any): Promise<Reply> {
  const appId = body && typeof body.appId === 'string' ? body.appId : '';
  try {
    if (method === 'GET' && rest === '/market') return json(200, { apps: APPS_CATALOG });
    if (method === 'GET' && (rest === '' || rest === '/')) {
      const rows = (await pool.query('SELECT * FROM "app_registry" ORDER BY "installedAt"')).rows;
      return json(200, { apps: rows.map((row: any) => ({
        ...row, availableVersion: getCatalogItem(row.appId)?.version || row.version, hasUpdate: false,
        ownsTables: [], ownsCPT: [], ownsACF: [] })) });
    }
    if (method === 'GET' && /^\/[^/]+$/.test(rest)) {
      const id = decodeURIComponent(rest.slice(1));
      const app = await find(pool, id);
      return app ? json(200, { app }) : json(404, { error: `App ${id} not found` });
    }
    if (method !== 'POST') return json(404, { success: false, error: 'Route not found', code: 'ROUTE_NOT_FOUND' });
    if (rest === '/install') {
      if (!appId) return json(400, { ok: false, error: 'MISSING_APP_ID', message: 'appId is required' });
      try {
        const manifest = MANIFESTS[appId];
        if (!manifest) throw new Error(`No manifest found for app: ${appId}`);
        if (!(await find(pool, appId))) {
          await pool.query('INSERT INTO "app_registry" ("appId", "name", "version", "type", "status") VALUES ($1, $2, $3, $4, $5)',
                           [appId, manifest.name, manifest.version, manifest.type, 'installed']);
        }
        await setStatus(pool, appId, 'active');
        return json(200, { ok: true, message: `App ${appId} installed successfully` });
      } catch (error: any) {
        console.error(`[Install] Failed for app ${appId}: ${error.message}`);
        return json(500, { ok: false, error: 'INSTALL_FAILED',
                           message: error.message || 'Unknown error occurred during installation' });
      }
    }
    if (!['/activate', '/deactivate', '/uninstall'].includes(rest)) {
      return json(404, { success: false, error: 'Route not found', code: 'ROUTE_NOT_FOUND' });
    }
    if (!appId) return json(400, { error: 'appId is required' });
    if (rest === '/activate') {
      await setStatus(pool, appId, 'active');
      return json(200, { ok: true, message: `App ${appId} activated successfully` });
    }
    if (rest === '/deactivate') {
      await setStatus(pool, appId, 'inactive');
      return json(200, { ok: true, message: `App ${appId} deactivated successfully` });
    }
    const purge = body.purge === true;
    await pool.query('DELETE FROM "app_registry" WHERE "appId" = $1', [appId]);
    return json(200, { ok: true, purged: purge, message: purge
      ? `App ${appId} and its data uninstalled successfully` : `App ${appId} uninstalled successfully (data kept)` });
  } catch (error: any) {
    console.error(`[admin/apps] ${method} ${rest}: ${error.message}`);
    return json(500, INTERNAL);
  }
}
