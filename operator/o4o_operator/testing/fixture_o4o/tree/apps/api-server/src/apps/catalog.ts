// The app market (O4O's APPS_CATALOG shape) and the manifests this instance can install: forum-core has one;
// signage is in the market but, as every app at O4O's HEAD, has no manifest, so installing it fails with
// O4O's own words.
import type { AppCatalogItem } from '@o4o/types';

export const APPS_CATALOG: AppCatalogItem[] = [
  {
    appId: 'forum-core', name: 'Forum Core', version: '1.0.0', description: 'Forum boards, posts and comments',
    category: 'community', type: 'core', author: 'O4O Platform', serviceGroups: ['platform-core'],
  },
  {
    appId: 'signage', name: 'Digital Signage', version: '1.0.0', description: 'Digital signage playlists',
    category: 'signage', type: 'standalone', author: 'O4O Platform', serviceGroups: ['signage'],
  },
];

export const MANIFESTS: Record<string, { appId: string; name: string; version: string; type: string }> = {
  'forum-core': { appId: 'forum-core', name: 'Forum Core', version: '1.0.0', type: 'core' },
};

export function getCatalogItem(appId: string): AppCatalogItem | undefined {
  return APPS_CATALOG.find((app) => app.appId === appId);
}
