// The API's entities, as the entity metadata TypeORM builds from decorated classes (EntityMetadata, ColumnMetadata,
// IndexMetadata, UniqueMetadata, ForeignKeyMetadata: the fields a schema builder reads). They are the schema's
// truth, as O4O's entities are: the migrations only change a schema these made. They carry O4O's four entity
// defects on purpose, which TypeORM's synchronize() cannot apply as declared and a bootstrap must repair: a table
// in a schema nothing creates (catalog), a default already quoted ("'draft'"), an index declared twice, and a
// foreign key to a column without a unique constraint (fixture_pages.title).
export interface ColumnMetadata {
  databaseName: string;
  type: string;
  isPrimary?: boolean;
  isNullable?: boolean;
  generationStrategy?: 'increment' | 'uuid';
  default?: string | number | boolean | (() => string);
}

export interface IndexMetadata {
  name: string;
  columns: ColumnMetadata[];
  isUnique?: boolean;
  where?: string;
}

export interface UniqueMetadata {
  name: string;
  columns: ColumnMetadata[];
}

export interface ForeignKeyMetadata {
  name: string;
  columns: ColumnMetadata[];
  referencedEntityMetadata: EntityMetadata;
  referencedColumns: ColumnMetadata[];
  onDelete?: string;
}

export interface EntityMetadata {
  name: string;
  tableName: string;
  schema?: string;
  columns: ColumnMetadata[];
  primaryColumns: ColumnMetadata[];
  indices: IndexMetadata[];
  uniques: UniqueMetadata[];
  foreignKeys: ForeignKeyMetadata[];
  relations: { foreignKeys: ForeignKeyMetadata[] }[];
}

const now = () => 'now()';

function entity(name: string, tableName: string, columns: ColumnMetadata[], schema?: string): EntityMetadata {
  return { name, tableName, schema, columns, primaryColumns: columns.filter((column) => column.isPrimary),
           indices: [], uniques: [], foreignKeys: [], relations: [] };
}

function column(metadata: EntityMetadata, name: string): ColumnMetadata {
  const found = metadata.columns.find((candidate) => candidate.databaseName === name);
  if (!found) throw new Error(`${metadata.name} has no column ${name}`);
  return found;
}

function unique(metadata: EntityMetadata, name: string, ...columns: string[]): void {
  metadata.uniques.push({ name, columns: columns.map((each) => column(metadata, each)) });
}

function index(metadata: EntityMetadata, name: string, columns: string[], options: Partial<IndexMetadata> = {}): void {
  metadata.indices.push({ name, columns: columns.map((each) => column(metadata, each)), ...options });
}

function foreignKey(from: EntityMetadata, name: string, own: string, to: EntityMetadata, referenced: string,
                    onDelete?: string): void {
  const key = { name, columns: [column(from, own)], referencedEntityMetadata: to,
                referencedColumns: [column(to, referenced)], onDelete };
  from.foreignKeys.push(key);
  from.relations.push({ foreignKeys: [key] });
}

const uuidKey = (): ColumnMetadata => ({ databaseName: 'id', type: 'uuid', isPrimary: true, generationStrategy: 'uuid' });
const serialKey = (): ColumnMetadata => ({ databaseName: 'id', type: 'integer', isPrimary: true,
                                           generationStrategy: 'increment' });

const User = entity('User', 'users', [
  uuidKey(),
  { databaseName: 'email', type: 'varchar(255)' },
  { databaseName: 'password', type: 'varchar(255)' },
  { databaseName: 'name', type: 'varchar(200)', isNullable: true },
  { databaseName: 'status', type: 'varchar(20)', default: 'active' },
  { databaseName: 'isActive', type: 'boolean', default: true },
  { databaseName: 'createdAt', type: 'timestamp', default: now },
]);
unique(User, 'UQ_users_email', 'email');

const RoleAssignment = entity('RoleAssignment', 'role_assignments', [
  uuidKey(),
  { databaseName: 'user_id', type: 'uuid' },
  { databaseName: 'role', type: 'varchar(100)' },
  { databaseName: 'is_active', type: 'boolean', default: true },
  { databaseName: 'assigned_at', type: 'timestamp', default: now },
  { databaseName: 'scope_type', type: 'varchar(20)', default: 'global' },
]);
index(RoleAssignment, 'role_assignments_user_role_active', ['user_id', 'role'], { isUnique: true, where: '"is_active"' });
foreignKey(RoleAssignment, 'FK_role_assignments_user', 'user_id', User, 'id', 'CASCADE');

const AppRegistry = entity('AppRegistry', 'app_registry', [
  uuidKey(),
  { databaseName: 'appId', type: 'varchar(100)' },
  { databaseName: 'name', type: 'varchar(255)' },
  { databaseName: 'version', type: 'varchar(50)' },
  { databaseName: 'previousVersion', type: 'varchar(50)', isNullable: true },
  { databaseName: 'type', type: 'varchar(20)', default: 'standalone' },
  { databaseName: 'status', type: 'varchar(20)', default: 'installed' },
  { databaseName: 'dependencies', type: 'jsonb', isNullable: true },
  { databaseName: 'source', type: 'varchar(50)', default: 'local' },
  { databaseName: 'installedAt', type: 'timestamp', default: now },
  { databaseName: 'updatedAt', type: 'timestamp', default: now },
]);
unique(AppRegistry, 'UQ_app_registry_appId', 'appId');
index(AppRegistry, 'IDX_app_registry_status', ['status']);

const FixturePage = entity('FixturePage', 'fixture_pages', [
  serialKey(),
  { databaseName: 'slug', type: 'varchar(100)' },
  { databaseName: 'title', type: 'varchar(255)' },
  { databaseName: 'status', type: 'varchar(20)', default: "'draft'" },  // quoted already: O4O's defect
  { databaseName: 'summary', type: 'varchar(255)', isNullable: true },
  { databaseName: 'createdAt', type: 'timestamp', default: now },
]);
unique(FixturePage, 'UQ_fixture_pages_slug', 'slug');
index(FixturePage, 'IDX_fixture_pages_title', ['title']);
index(FixturePage, 'IDX_fixture_pages_title', ['title']);  // declared twice: O4O's defect

const FixtureNote = entity('FixtureNote', 'fixture_notes', [
  serialKey(),
  { databaseName: 'body', type: 'text' },
  { databaseName: 'page_title', type: 'varchar(255)', isNullable: true },
], 'catalog');  // a schema nothing creates: O4O's defect
foreignKey(FixtureNote, 'FK_fixture_notes_page_title', 'page_title', FixturePage, 'title');  // not unique: O4O's defect

export const entities: EntityMetadata[] = [User, RoleAssignment, AppRegistry, FixturePage, FixtureNote];
