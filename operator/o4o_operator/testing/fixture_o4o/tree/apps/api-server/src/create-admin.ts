/**
 * create-admin - as O4O's create-admin script (`pnpm run create-admin -- --email=... --password=...`):
 * creates the account with an active platform:super_admin role assignment, or, when the email exists already,
 * says so, re-activates it and makes sure of the role (idempotent; the password of an existing account is kept,
 * as O4O's keeps it). Arguments are parsed as O4O parses them: arg.split('=')[1], so a value with '=' in it is cut.
 */
import { apiDbSettings, makePool } from './lib/db';
import { hashPassword } from './lib/password';

const ADMIN_ROLE = 'platform:super_admin';

async function createAdmin(options: { email?: string; password?: string; name?: string }): Promise<void> {
  const email = options.email || 'admin@neture.co.kr';
  const password = options.password || 'Admin123!';
  const name = options.name || 'System Administrator';
  const pool = makePool(apiDbSettings());
  try {
    const existing = (await pool.query('SELECT "id", "status" FROM "users" WHERE "email" = $1', [email])).rows[0];
    let id: string;
    if (existing) {
      console.log(`User already exists: ${email}`);
      id = existing.id;
      if (existing.status !== 'active') {
        await pool.query(`UPDATE "users" SET "status" = 'active', "isActive" = true WHERE "id" = $1`, [id]);
        console.log("Status updated to 'active'");
      }
    } else {
      const hashed = await hashPassword(password);
      id = (await pool.query('INSERT INTO "users" ("email", "password", "name") VALUES ($1, $2, $3) RETURNING "id"',
                             [email, hashed, name])).rows[0].id;
      console.log(`User created successfully: ${email}`);
    }
    await pool.query(`INSERT INTO "role_assignments" ("user_id", "role", "is_active", "scope_type")
                      VALUES ($1, $2, true, 'global') ON CONFLICT ("user_id", "role") WHERE "is_active" DO NOTHING`,
                     [id, ADMIN_ROLE]);
    console.log(`Role: ${ADMIN_ROLE}`);
  } finally {
    await pool.end();
  }
}

const options: { email?: string; password?: string; name?: string } = {};
for (const arg of process.argv.slice(2)) {
  if (arg.startsWith('--email=')) options.email = arg.split('=')[1];
  else if (arg.startsWith('--password=')) options.password = arg.split('=')[1];
  else if (arg.startsWith('--name=')) options.name = arg.split('=')[1];
}

createAdmin(options).then(() => {
  console.log('Script completed successfully');
  process.exit(0);
}).catch((error: any) => {
  console.error(`Failed to create admin user: ${error && error.message ? error.message : String(error)}`);
  process.exit(1);
});
