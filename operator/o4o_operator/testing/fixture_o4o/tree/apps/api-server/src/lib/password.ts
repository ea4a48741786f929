// Password hashes for the admin account: node's crypto.scrypt, stored as scrypt$<salt hex>$<key hex>.
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

function derive(password: string, salt: string): Promise<any> {
  return new Promise((resolve, reject) => {
    scrypt(password, salt, 64, (error: Error | null, key: any) => (error ? reject(error) : resolve(key)));
  });
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16).toString('hex');
  const key = await derive(password, salt);
  return `scrypt$${salt}$${key.toString('hex')}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, salt, hex] = stored.split('$');
  if (scheme !== 'scrypt' || !salt || !hex) return false;
  const key = await derive(password, salt);
  const expected = Buffer.from(hex, 'hex') as any;
  return expected.length === key.length && timingSafeEqual(expected, key);
}
