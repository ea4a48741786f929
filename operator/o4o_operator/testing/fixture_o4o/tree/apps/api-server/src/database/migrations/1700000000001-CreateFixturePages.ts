// A real migration, shaped like a TypeORM one: the table a test looks for after Ready.
export class CreateFixturePages1700000000001 {
  name = 'CreateFixturePages1700000000001';

  async up(queryRunner: { query(sql: string, params?: unknown[]): Promise<unknown> }): Promise<void> {
    await queryRunner.query(`CREATE TABLE "fixture_pages" (
      "id" SERIAL PRIMARY KEY,
      "slug" varchar(100) NOT NULL UNIQUE,
      "title" varchar(255) NOT NULL,
      "createdAt" TIMESTAMP NOT NULL DEFAULT now()
    )`);
    await queryRunner.query(`INSERT INTO "fixture_pages" ("slug", "title") VALUES ('home', 'Home')`);
  }
}
