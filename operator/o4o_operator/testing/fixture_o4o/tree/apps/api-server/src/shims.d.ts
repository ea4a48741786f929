// Just enough of Node.js and pg for the fixture, so that the only registry packages are typescript and pg.
declare const process: {
  env: Record<string, string | undefined>;
  argv: string[];
  exit(code?: number): never;
  uptime(): number;
  cwd(): string;
  pid: number;
  on(event: string, listener: (...args: any[]) => void): void;
};
declare const __dirname: string;
declare function require(id: string): any;
declare const Buffer: {
  from(data: string, encoding?: string): { toString(encoding?: string): string; length: number };
  concat(chunks: any[]): { toString(encoding?: string): string };
};
declare module 'node:http';
declare module 'node:crypto';
declare module 'node:fs';
declare module 'node:path';
declare module 'node:util';
declare module 'pg';
