// tollgate/dashboard: a read-only page of spend, limits, quota keys, caches and store health.
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { CostTracker, Guard, Quota, QuotaKey, RedisStore, ResponseCache, SemanticCache } from './index.js'

/** Options of {@link dashboard}. */
export interface DashboardOptions {
  /**
   * A Redis URL (`redis://` or `rediss://`): budgets of every CostTracker, guard meters (the
   * busiest scopes) and quota scopes are read from there, as `tollgate status` reads them, so
   * the page shows every process. Without it, the page shows what the objects below see (an
   * in-process MemoryStore).
   */
  redis?: string
  /** Key prefixes scanned in Redis. Default tollgate's three and the given objects' prefixes. */
  prefixes?: string[]
  /** Budgets, totals and spend history (per day and per hour, by model and tag). */
  trackers?: CostTracker | CostTracker[]
  /**
   * Limits' maxima; the refusals, cache hits and (in process) scopes this process sees from
   * them are kept in a small ring (the last 50 refusals, 256 scopes per guard).
   */
  guards?: Guard | Guard[]
  /** Quota keys' headroom and cooldowns, read with `quota.check(scope, keys, 0)`. */
  quotas?: DashboardQuota | DashboardQuota[]
  /** Hit rates. */
  caches?: ResponseCache | SemanticCache | Array<ResponseCache | SemanticCache>
  /** Stores whose `health()` is shown (status, outage, counts waiting to be replayed). */
  stores?: RedisStore | RedisStore[]
  /**
   * Decides who may see the page (resolve true to allow; false, a rejection or a throw answer
   * 401). Without it, only requests from this machine (a loopback address, not forwarded by a
   * proxy) are answered; others get 403.
   */
  authorize?: (req: IncomingMessage) => boolean | Promise<boolean>
  /** Where the page is mounted when the handler sees the full URL (fastify, hono). Default: `''`. */
  path?: string
  /** How often the page refreshes, ms (500 to 3,600,000). Default 5000. */
  refreshMs?: number
  /** Scopes shown per guard limit, busiest first. Default 10. */
  top?: number
  /** The page's heading. Default `'tollgate'`. */
  title?: string
  /** The clock of the refusal times. Default `Date.now`. */
  now?: () => number
}

/** A quota scope and its keys, as passed to `quota.check`. */
export interface DashboardQuota {
  quota: Quota<any, any>
  scope: string
  keys: QuotaKey[]
}

/**
 * A `(req, res)` handler for `node:http` (and express, fastify's `reply.raw`, hono's node
 * server) serving the dashboard page at `/` and its data at `/data.json` (`?days=1..400`,
 * `?hours=1..48`). GET and HEAD only; other methods get 405, unknown paths 404, bad query
 * values 400.
 *
 * @example
 * import http from 'node:http'
 * import { dashboard } from 'tollgate/dashboard'
 * http.createServer(dashboard({ redis: 'redis://localhost:6379', trackers: [tracker], guards: [guard] })).listen(9464, '127.0.0.1')
 */
export declare function dashboard(options?: DashboardOptions): (req: IncomingMessage, res: ServerResponse) => Promise<void>
