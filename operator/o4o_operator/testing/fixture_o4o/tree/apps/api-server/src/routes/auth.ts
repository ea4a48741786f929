// POST /api/v1/auth/login and the admin guard, as O4O's: the body is {email, password, includeLegacyTokens?};
// the answer is {success: true, data: {message, user, tokens?}}, with the tokens in httpOnly cookies
// (accessToken, refreshToken) always and in the body only when includeLegacyTokens is true or the request is
// cross-origin. The guard reads a Bearer header first, then the accessToken cookie, and requires an active
// platform:super_admin role assignment.
import { cookies, json, Reply } from '../lib/http';
import { verifyPassword } from '../lib/password';
import { issueToken, verifyToken } from '../lib/token';

const ACCESS_SECONDS = 15 * 60;
const REFRESH_SECONDS = 7 * 24 * 60 * 60;

function baseDomain(hostname: string): string {
  const parts = hostname.split('.');
  if (parts.length >= 3 && ['co', 'com', 'net', 'org', 'ac', 'go'].includes(parts[parts.length - 2])) {
    return parts.slice(-3).join('.');
  }
  return parts.slice(-2).join('.');
}

function isCrossOrigin(req: any): boolean {
  const origin = req.headers.origin;
  if (!origin) return false;
  try {
    return baseDomain(new URL(origin).hostname) !== baseDomain(String(req.headers.host || '').split(':')[0]);
  } catch {
    return false;
  }
}

function cookie(name: string, value: string, maxAgeSeconds: number): string {
  const production = process.env.NODE_ENV === 'production';
  return `${name}=${encodeURIComponent(value)}; Max-Age=${maxAgeSeconds}; Path=/; HttpOnly` +
    (production ? '; Secure; SameSite=None' : '; SameSite=Lax');
}

export async function login(pool: any, secret: string, req: any, body: any): Promise<Reply> {
  const email = body && typeof body.email === 'string' ? body.email : '';
  const password = body && typeof body.password === 'string' ? body.password : '';
  const details: { field: string; message: string }[] = [];
  if (!/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email)) details.push({ field: 'email', message: 'Valid email is required' });
  if (password.length < 6) details.push({ field: 'password', message: 'Password must be at least 6 characters' });
  if (details.length) return json(400, { success: false, error: 'Validation failed', details });
  let user: any;
  try {
    user = (await pool.query('SELECT "id", "email", "password", "name", "status" FROM "users" WHERE "email" = $1',
                             [email])).rows[0];
  } catch (error: any) {
    console.error(`[AuthLoginController.login] Login error: ${error.message}`);
    return json(500, { success: false, error: 'Login failed', code: 'INTERNAL_ERROR' });
  }
  if (!user || !(await verifyPassword(password, user.password))) {
    return json(401, { success: false, error: '비밀번호가 일치하지 않습니다.', code: 'INVALID_CREDENTIALS' });
  }
  if (user.status !== 'active') {
    return json(403, { success: false, error: 'Account is not active', code: 'ACCOUNT_NOT_ACTIVE' });
  }
  const accessToken = issueToken({ userId: user.id, sub: user.id, email: user.email }, secret, ACCESS_SECONDS);
  const refreshToken = issueToken({ userId: user.id, sub: user.id, type: 'refresh' }, secret, REFRESH_SECONDS);
  const data: Record<string, unknown> = {
    message: 'Login successful',
    user: { id: user.id, email: user.email, name: user.name, status: user.status,
            displayName: user.name || user.email.split('@')[0] },
  };
  if (body.includeLegacyTokens === true || isCrossOrigin(req)) {
    data.tokens = { accessToken, refreshToken, expiresIn: ACCESS_SECONDS };
  }
  return json(200, { success: true, data },
              [cookie('accessToken', accessToken, ACCESS_SECONDS), cookie('refreshToken', refreshToken, REFRESH_SECONDS)]);
}

/** null when the request may go on; otherwise the 401/403 answer. */
export async function requireAdmin(pool: any, secret: string, req: any): Promise<Reply | null> {
  const header = String(req.headers.authorization || '');
  const token = header.startsWith('Bearer ') ? header.slice(7) : cookies(req).accessToken;
  if (!token) return json(401, { success: false, error: 'Authentication required', code: 'AUTH_REQUIRED' });
  const claims = verifyToken(token, secret);
  if (!claims || claims.type === 'refresh') {
    return json(401, { success: false, error: 'Access token is invalid or has expired', code: 'INVALID_TOKEN' });
  }
  const roles = await pool.query(
    'SELECT 1 FROM "role_assignments" WHERE "user_id" = $1 AND "role" = $2 AND "is_active" = true',
    [claims.userId, 'platform:super_admin']);
  if (!roles.rows.length) return json(403, { success: false, error: 'Admin privileges required', code: 'FORBIDDEN' });
  return null;
}
