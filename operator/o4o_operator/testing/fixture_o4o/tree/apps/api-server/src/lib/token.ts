// HS256 JSON Web Tokens signed with JWT_SECRET (node:crypto only), with O4O's issuer and audience checks.
import { createHmac, timingSafeEqual } from 'node:crypto';

const ISSUER = 'o4o-platform';
const AUDIENCE = 'o4o-api';

function encode(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

function sign(input: string, secret: string): string {
  return createHmac('sha256', secret).update(input).digest('base64url');
}

export function issueToken(claims: Record<string, unknown>, secret: string, lifetimeSeconds: number): string {
  const now = Math.floor(Date.now() / 1000);
  const head = `${encode({ alg: 'HS256', typ: 'JWT' })}.${encode({ ...claims, iat: now, exp: now + lifetimeSeconds, iss: ISSUER, aud: AUDIENCE })}`;
  return `${head}.${sign(head, secret)}`;
}

export function verifyToken(token: string, secret: string): Record<string, any> | null {
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  const expected = Buffer.from(sign(`${parts[0]}.${parts[1]}`, secret)) as any;
  const given = Buffer.from(parts[2]) as any;
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) return null;
  try {
    const claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
    if (claims.iss !== ISSUER || claims.aud !== AUDIENCE) return null;
    if (typeof claims.exp !== 'number' || claims.exp < Math.floor(Date.now() / 1000)) return null;
    return claims;
  } catch {
    return null;
  }
}
