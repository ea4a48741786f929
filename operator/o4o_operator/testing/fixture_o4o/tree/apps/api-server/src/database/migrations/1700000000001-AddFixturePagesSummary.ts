// A change on top of the schema the entities make (as O4O's migrations are): on an empty database it fails
// (relation "fixture_pages" does not exist). A fresh database is bootstrapped from the entities, which already
// have this column, and the migration is recorded as applied without running.
export class AddFixturePagesSummary1700000000001 {
  name = 'AddFixturePagesSummary1700000000001';

  async up(queryRunner: { query(sql: string, params?: unknown[]): Promise<unknown> }): Promise<void> {
    await queryRunner.query(`ALTER TABLE "fixture_pages" ADD COLUMN "summary" varchar(255)`);
  }
}
