// tollgate/http: a Guard in front of express, fastify and hono, per client key.
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Guard, GuardDecision, GuardLimit } from '../index.js'

/** The draft the RateLimit headers follow: `'draft-ietf-httpapi-ratelimit-headers-11'`. */
export declare const DRAFT: string

/** Options of {@link expressGuard}, {@link fastifyGuard} and {@link honoGuard}. */
export interface HttpGuardOptions<Req, Ctx = { key: string; req: Req }> {
  /**
   * The client's key — a user id, an API key, an IP — or null/undefined to let the request
   * through unguarded. A key that throws (or rejects) goes to the framework's error path (500),
   * with nothing charged.
   */
  key: (req: Req) => string | null | undefined | Promise<string | null | undefined>
  /**
   * The limits the headers describe (the guard's request and concurrency limits). Default: the
   * guard's own `policy`.
   */
  limits?: GuardLimit<Ctx>[]
  /** The guard's ctx for a request. Default `{ key, req }`. */
  context?: (key: string, req: Req) => Ctx
  /** The model id of the acquire (a request carries no tokens). Default `'http'`. */
  model?: string
  /** Send `RateLimit-Policy` / `RateLimit`. Default true. */
  headers?: boolean
  /** The clock of the guard's store (dates a `'day'` limit's effective window). Default `Date.now`. */
  now?: () => number
  /**
   * Up to this many ms, a refused request waits for capacity (`guard.acquire`'s `wait`)
   * instead of being answered 429 at once: a short burst is smoothed rather than refused.
   * Default 0 (answer at once).
   */
  waitMs?: number
}

/** What a middleware did. */
export interface HttpGuardStats {
  requests: number
  refused: number
  settled: number
  settleErrors: number
}

/**
 * express middleware: one `guard.acquire({ key, req })` per request (one request, no tokens),
 * settled when the response closes (sent or abandoned: the request stays counted, a concurrency
 * slot is freed). Refused: 429, `Retry-After` (seconds; absent when the request can never fit)
 * and an `application/problem+json` body (`type` quota-exceeded, `violated-policies`).
 *
 * @example
 * app.use(expressGuard(guard, { key: (req) => req.get('x-user-id') ?? req.ip, limits }))
 */
export declare function expressGuard<Req extends IncomingMessage = IncomingMessage, Ctx = { key: string; req: Req }>(
  guard: Guard<Ctx>,
  options: HttpGuardOptions<Req, Ctx>,
): ((req: Req, res: ServerResponse, next: (err?: unknown) => void) => void) & { stats(): HttpGuardStats }

/** The part of fastify's reply the hook uses. */
export interface FastifyReplyLike {
  code(statusCode: number): unknown
  headers(values: Record<string, string>): unknown
  send(payload?: unknown): unknown
  raw: ServerResponse
}

/**
 * fastify `onRequest` hook, as {@link expressGuard}.
 *
 * @example
 * fastify.addHook('onRequest', fastifyGuard(guard, { key: (request) => request.ip, limits }))
 */
export declare function fastifyGuard<Req = any, Ctx = { key: string; req: Req }>(
  guard: Guard<Ctx>,
  options: HttpGuardOptions<Req, Ctx>,
): ((request: Req, reply: FastifyReplyLike) => Promise<unknown>) & { stats(): HttpGuardStats }

/** The part of hono's Context the middleware uses. */
export interface HonoContextLike {
  req: unknown
  env: any
  res: Response
  header(name: string, value: string): void
  body(data: string, status: any, headers: Record<string, string>): Response
}

/**
 * hono middleware, as {@link expressGuard}; `key` gets hono's Context, ctx is `{ key, req: c.req }`.
 *
 * @example
 * app.use(honoGuard(guard, { key: (c) => c.req.header('x-api-key'), limits }))
 */
export declare function honoGuard<C extends HonoContextLike = any, Ctx = { key: string; req: C['req'] }>(
  guard: Guard<Ctx>,
  options: HttpGuardOptions<C, Ctx>,
): ((c: C, next: () => Promise<void>) => Promise<Response | void>) & { stats(): HttpGuardStats }

/** The RateLimit fields for a decision of `guard`; null when no request or concurrency limit applied. */
export declare function rateLimitHeaders(guard: Guard<any>, limits: GuardLimit<any>[], decision: GuardDecision, now?: number): { 'RateLimit-Policy': string; RateLimit: string } | null

/** Options of {@link rateLimitStore}. */
export interface RateLimitStoreOptions {
  /** A tollgate store (MemoryStore, RedisStore, Redis URL or client). Default: a new MemoryStore. */
  store?: unknown
  /** Key prefix. Default `'tollgate:erl:'`. */
  prefix?: string
}

/**
 * express-rate-limit's `store` (its `Store` interface), counted by a tollgate Guard: a sliding
 * window of `limit` requests per `windowMs` per key. A refused request is not counted
 * (`totalHits` is `limit + 1`). `decrement` and `resetKey` give back the requests this process
 * counted (in the window).
 */
export declare class RateLimitStore {
  readonly prefix: string
  readonly localKeys: boolean
  init(options: { windowMs: number; limit: unknown }): void
  increment(key: string): Promise<{ totalHits: number; resetTime: Date | undefined }>
  decrement(key: string): Promise<void>
  resetKey(key: string): Promise<void>
  get(key: string): Promise<{ totalHits: number; resetTime: Date | undefined }>
  shutdown(): void
}

/** @example rateLimit({ windowMs: 60_000, limit: 20, store: rateLimitStore({ store: new RedisStore(url) }) }) */
export declare function rateLimitStore(options?: RateLimitStoreOptions): RateLimitStore
