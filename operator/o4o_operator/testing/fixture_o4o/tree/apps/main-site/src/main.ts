// Type-checked against @o4o/types as O4O's `tsc && vite build` does; the page itself is public/index.html.
import { PLATFORM } from '@o4o/types';

export const title: string = `${PLATFORM} main site`;
