// The workspace package both apps import: nothing else compiles until it is built (its types are dist/index.d.ts).
export const PLATFORM = 'o4o';

export type DatabaseStatus = 'healthy' | 'not_initialized' | 'unhealthy' | 'not_connected';

export interface HealthBody {
  status: 'alive';
  timestamp: string;
  uptime: number;
  version: string;
  environment: string;
  database: { status: DatabaseStatus; error?: string };
}

export type AppStatus = 'installed' | 'active' | 'inactive';

export interface AppCatalogItem {
  appId: string;
  name: string;
  version: string;
  description: string;
  category: string;
  type: 'core' | 'extension' | 'standalone';
  author: string;
  serviceGroups: string[];
}
