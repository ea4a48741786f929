// The accounts, role assignments and app registry the admin API needs, with O4O's table and column names.
export class CreateUsersAndAppRegistry1700000000002 {
  name = 'CreateUsersAndAppRegistry1700000000002';

  async up(queryRunner: { query(sql: string, params?: unknown[]): Promise<unknown> }): Promise<void> {
    await queryRunner.query(`CREATE TABLE "users" (
      "id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      "email" varchar(255) NOT NULL UNIQUE,
      "password" varchar(255) NOT NULL,
      "name" varchar(200),
      "status" varchar(20) NOT NULL DEFAULT 'active',
      "isActive" boolean NOT NULL DEFAULT true,
      "createdAt" TIMESTAMP NOT NULL DEFAULT now()
    )`);
    await queryRunner.query(`CREATE TABLE "role_assignments" (
      "id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      "user_id" uuid NOT NULL REFERENCES "users" ("id") ON DELETE CASCADE,
      "role" varchar(100) NOT NULL,
      "is_active" boolean NOT NULL DEFAULT true,
      "assigned_at" TIMESTAMP NOT NULL DEFAULT now(),
      "scope_type" varchar(20) NOT NULL DEFAULT 'global'
    )`);
    await queryRunner.query(
      `CREATE UNIQUE INDEX "role_assignments_user_role_active" ON "role_assignments" ("user_id", "role") WHERE "is_active"`);
    await queryRunner.query(`CREATE TABLE "app_registry" (
      "id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      "appId" varchar(100) NOT NULL UNIQUE,
      "name" varchar(255) NOT NULL,
      "version" varchar(50) NOT NULL,
      "previousVersion" varchar(50),
      "type" varchar(20) NOT NULL DEFAULT 'standalone',
      "status" varchar(20) NOT NULL DEFAULT 'installed',
      "dependencies" jsonb,
      "source" varchar(50) NOT NULL DEFAULT 'local',
      "installedAt" TIMESTAMP NOT NULL DEFAULT now(),
      "updatedAt" TIMESTAMP NOT NULL DEFAULT now()
    )`);
  }
}
