// /openapi.json documents every route the real server registers, and is a valid OpenAPI 3.1
// document. The route list comes from the server itself (an onRoute hook in buildServer), so a
// route added later without documentation fails here.
import { Validator } from '@seriousme/openapi-schema-validator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registeredRoutes } from '../../ingress/server.ts';
import { startHarness, type Harness } from '../harness.ts';

let h: Harness;
let doc: { openapi: string; paths: Record<string, Record<string, unknown>> };

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

/** fastify's `/v1/payments/:id` is OpenAPI's `/v1/payments/{id}`. */
const openApiPath = (url: string) => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

beforeAll(async () => {
  h = await startHarness({ engine: false, settlement: false });
  const res = await h.app.inject({ method: 'GET', url: '/openapi.json' });
  expect(res.statusCode).toBe(200);
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  doc = res.json();
});
afterAll(async () => {
  await h?.stop();
});

describe('/openapi.json', () => {
  it('is a valid OpenAPI 3.1 document', async () => {
    expect(doc.openapi).toMatch(/^3\.1\./);
    const validator = new Validator();
    const result = await validator.validate(doc);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
  });

  it('rejects a broken document (the validator is not a rubber stamp)', async () => {
    const broken = structuredClone(doc) as Record<string, unknown>;
    (broken.paths as Record<string, unknown>)['/v1/payments'] = { post: { responses: 'none' } };
    expect((await new Validator().validate(broken)).valid).toBe(false);
  });

  it('documents every route and method the server registers', () => {
    const routes = registeredRoutes(h.app);
    // The payment routes exist: an empty list would make the check below pass vacuously.
    expect(routes.map((r) => `${r.method} ${r.url}`)).toEqual(expect.arrayContaining(['POST /v1/payments', 'GET /v1/payments/:id', 'GET /openapi.json']));
    const missing = routes
      .filter((r) => !(doc.paths[openApiPath(r.url)]?.[r.method.toLowerCase()]))
      .map((r) => `${r.method} ${openApiPath(r.url)}`);
    expect(missing).toEqual([]);
  });

  it('documents no route the server does not have', () => {
    const served = new Set(registeredRoutes(h.app).map((r) => `${r.method.toLowerCase()} ${openApiPath(r.url)}`));
    const extra: string[] = [];
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const method of Object.keys(item).filter((k) => HTTP_METHODS.includes(k))) {
        if (!served.has(`${method} ${path}`)) extra.push(`${method.toUpperCase()} ${path}`);
      }
    }
    expect(extra).toEqual([]);
  });

  it('names each path parameter of a route in its operation', () => {
    const problems: string[] = [];
    for (const r of registeredRoutes(h.app)) {
      const params = [...r.url.matchAll(/:([A-Za-z0-9_]+)/g)].map((m) => m[1]);
      const op = doc.paths[openApiPath(r.url)]?.[r.method.toLowerCase()] as { parameters?: { name: string; in: string }[] } | undefined;
      for (const p of params) {
        if (!op?.parameters?.some((q) => q.in === 'path' && q.name === p)) problems.push(`${r.method} ${r.url}: ${p}`);
      }
    }
    expect(problems).toEqual([]);
  });
});
