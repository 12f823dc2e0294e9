import { packageVersion } from '../../core/version.js';
import { metricsRegistry } from '../../metrics/registry.js';
import { type Route, defineRoute } from '../route.js';
import { Health, VersionInfo } from '../schemas.js';

/** The version of the REST API; a breaking change gets a new path prefix as well. */
export const API_VERSION = '1';

/** Health, version, metrics and the OpenAPI document; health and the document need no token. */
export function metaRoutes(openApi: () => object): Route[] {
  return [
    defineRoute(
      {
        method: 'GET',
        url: '/v1/health',
        operationId: 'health',
        summary: 'Whether the daemon answers (no token needed)',
        public: true,
        responses: { 200: { description: 'the daemon is serving', json: Health } },
      },
      async () => ({ status: 'ok' }),
    ),
    defineRoute(
      {
        method: 'GET',
        url: '/v1/version',
        operationId: 'version',
        summary: "jitvm's version and the API version",
        responses: { 200: { description: 'versions', json: VersionInfo } },
      },
      async () => ({ version: packageVersion(), apiVersion: API_VERSION }),
    ),
    defineRoute(
      {
        method: 'GET',
        url: '/metrics',
        operationId: 'metrics',
        summary: "Prometheus metrics of this daemon's sandboxes, pools, execs, errors and allowlist verdicts",
        responses: { 200: { description: 'the metrics (Prometheus text format 0.0.4)', text: 'text/plain' } },
      },
      async ({ reply }) => reply.type(metricsRegistry.contentType).send(await metricsRegistry.metrics()),
    ),
    defineRoute(
      {
        method: 'GET',
        url: '/v1/openapi.json',
        operationId: 'openapi',
        summary: 'This OpenAPI 3.1 document (no token needed)',
        public: true,
        responses: { 200: { description: 'the OpenAPI document' } },
      },
      async () => openApi(),
    ),
  ];
}
