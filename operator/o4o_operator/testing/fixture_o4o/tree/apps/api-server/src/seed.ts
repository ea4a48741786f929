/**
 * seed - what an installation of the fixture needs once its schema exists (spec.build.api.seedCommand, run by a
 * bootstrap after the schema is made from the entities): the home page, and the seed account whose password is
 * SEED_BOOTSTRAP_PASSWORD. Like a seed that must never keep a default password, it refuses to run without one.
 * Idempotent (ON CONFLICT DO NOTHING). Reads the database as the API does (lib/db).
 */
import { apiDbSettings, makePool } from './lib/db';
import { hashPassword } from './lib/password';

export const SEED_ACCOUNT = 'seed-admin@fixture.invalid';

async function seed(): Promise<void> {
  const password = process.env.SEED_BOOTSTRAP_PASSWORD;
  if (!password) throw new Error('SEED_BOOTSTRAP_PASSWORD is not set: the seed account gets no default password');
  const pool = makePool(apiDbSettings());
  try {
    const pages = await pool.query(`INSERT INTO "fixture_pages" ("slug", "title", "status") VALUES ('home', 'Home', 'published')
                                    ON CONFLICT ("slug") DO NOTHING`);
    const accounts = await pool.query(`INSERT INTO "users" ("email", "password", "name") VALUES ($1, $2, 'Seed admin')
                                       ON CONFLICT ("email") DO NOTHING`, [SEED_ACCOUNT, await hashPassword(password)]);
    console.log(`seeded: ${pages.rowCount} page(s), ${accounts.rowCount} account(s)`);
  } finally {
    await pool.end();
  }
}

seed().then(() => process.exit(0)).catch((error: any) => {
  console.error(`seed failed: ${error && error.message ? error.message : String(error)}`);
  process.exit(1);
});
