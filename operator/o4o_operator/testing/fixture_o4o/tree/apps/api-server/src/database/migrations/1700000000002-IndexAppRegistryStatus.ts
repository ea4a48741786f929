// Another change on top of the entities' schema: fails on an empty database (relation "app_registry" does not exist).
export class IndexAppRegistryStatus1700000000002 {
  name = 'IndexAppRegistryStatus1700000000002';

  async up(queryRunner: { query(sql: string, params?: unknown[]): Promise<unknown> }): Promise<void> {
    await queryRunner.query(`CREATE INDEX "IDX_app_registry_status" ON "app_registry" ("status")`);
  }
}
