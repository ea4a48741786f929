// Small HTTP helpers in place of express: JSON bodies, JSON answers, cookies.
export interface Reply {
  status: number;
  body: unknown;
  cookies?: string[];
}

export function json(status: number, body: unknown, cookies?: string[]): Reply {
  return { status, body, cookies };
}

export function readBody(req: any): Promise<any> {
  return new Promise((resolve) => {
    const chunks: any[] = [];
    req.on('data', (chunk: any) => chunks.push(chunk));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      try {
        resolve(text ? JSON.parse(text) : {});
      } catch {
        resolve(null);
      }
    });
  });
}

export function cookies(req: any): Record<string, string> {
  const found: Record<string, string> = {};
  for (const part of String(req.headers.cookie || '').split(';')) {
    const index = part.indexOf('=');
    if (index > 0) found[part.slice(0, index).trim()] = decodeURIComponent(part.slice(index + 1).trim());
  }
  return found;
}

export function send(res: any, reply: Reply): void {
  const headers: Record<string, unknown> = { 'content-type': 'application/json; charset=utf-8' };
  if (reply.cookies && reply.cookies.length) headers['set-cookie'] = reply.cookies;
  res.writeHead(reply.status, headers);
  res.end(JSON.stringify(reply.body));
}
