import { listPools } from '../../sandbox/pool-status.js';
import { type Route, defineRoute } from '../route.js';
import { PoolList } from '../schemas-snapshots.js';

/** The warm pools running on this host, read-only (what `jitvm pool` shows). */
export function poolRoutes(): Route[] {
  return [
    defineRoute(
      {
        method: 'GET',
        url: '/v1/pools',
        operationId: 'listPools',
        summary:
          "The warm pools running on this host for the daemon's user, from the status files their processes keep",
        responses: { 200: { description: 'the pools, oldest first', json: PoolList } },
      },
      async () => ({ pools: listPools() }),
    ),
  ];
}
