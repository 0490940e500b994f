'use strict'
// tollgate/http: a guard in front of an HTTP server (express, fastify, hono), per client key.
//
// Each request is one call to `guard.acquire(ctx)` with ctx `{ key, req }` — one request, no
// tokens — settled when the response is done (sent, or the client went away), which frees a
// concurrency slot; a refusal is answered 429 with Retry-After and a problem+json body. Every
// guarded response carries the IETF RateLimit-Policy and RateLimit fields
// (draft-ietf-httpapi-ratelimit-headers-11) of the guard's request and concurrency limits.
// Token and dollar limits are not charged here: the SDK calls settle them.
//
// `rateLimitStore` is the other way in: express-rate-limit keeps its middleware, and a guard
// on a tollgate store counts underneath.

const { Guard, periodOf } = require('../guard')
const { MemoryStore, kClock } = require('../stores')
const { invalidArg } = require('../errors')
const v = require('../validate')
const { watchStream } = require('./watch')

/** The draft whose field syntax the headers follow. */
const DRAFT = 'draft-ietf-httpapi-ratelimit-headers-11'
/** RFC 9457 problem type the draft defines for a refusal. */
const QUOTA_EXCEEDED = 'https://iana.org/assignments/http-problem-types#quota-exceeded'
const UNITS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }
const NOTHING = { inputTokens: 0, cachedInputTokens: 0, cacheWriteTokens: 0, outputTokens: 0, reasoningTokens: 0 }

/** A limit's window in ms, its calendar period, or neither (concurrency), from its `per`. */
function periodOfLimit(l) {
  if (l.per === 'day' || l.per === 'month') return { calendar: l.per, timeZone: l.timeZone === undefined || l.timeZone === 'UTC' ? null : l.timeZone }
  if (typeof l.per === 'number') return { windowMs: l.per }
  const m = typeof l.per === 'string' ? /^(\d+)(ms|s|m|h|d)$/.exec(l.per) : null
  return m ? { windowMs: Number(m[1]) * UNITS[m[2]] } : {}
}

/**
 * What the headers say of the guard's limits: id → `{ q, w?, concurrent }` for its request and
 * concurrency limits (token and dollar limits are not request quotas, and are left out).
 */
function describe(guard, given) {
  // The guard's own policy unless the caller passes the limits (an older guard without `policy`).
  const limits = given === undefined && Array.isArray(guard.policy) ? guard.policy : given
  if (!Array.isArray(limits)) throw invalidArg(`options.limits must be the guard's limits (the array given to new Guard), for the RateLimit-Policy header; got ${v.describe(limits)}`)
  const ids = new Set(guard.limits)
  const out = new Map()
  limits.forEach((l, i) => {
    if (l === null || typeof l !== 'object' || !ids.has(l.id)) throw invalidArg(`options.limits[${i}] is not one of the guard's limits (${guard.limits.join(', ')})`)
    if (typeof l.requests === 'number') out.set(l.id, { q: l.requests, concurrent: false, ...periodOfLimit(l) })
    else if (typeof l.concurrent === 'number') out.set(l.id, { q: l.concurrent, concurrent: true })
  })
  return out
}

/**
 * The RateLimit-Policy and RateLimit field values for a decision, or null when none of the
 * described limits applied. `now` dates a calendar limit's effective window.
 */
function rateLimitHeaders(described, decision, now) {
  const policy = []
  const limit = []
  for (const id of Object.keys(decision.remaining)) {
    const p = described.get(id)
    if (p === undefined) continue
    let item = `"${id}";q=${p.q}`
    if (p.concurrent) item += ';qu="concurrent-requests"'
    else if (p.windowMs !== undefined) item += `;w=${Math.max(1, Math.ceil(p.windowMs / 1000))}`
    else if (p.calendar === 'day') item += ';w=86400'
    policy.push(item)
    const r = Math.max(0, Math.floor(decision.remaining[id]))
    let t = null
    if (decision.limit === id && decision.retryAfterMs !== null) t = Math.ceil(decision.retryAfterMs / 1000)
    else if (p.calendar !== undefined) t = Math.max(0, Math.ceil((periodOf(p.calendar, p.timeZone, now).end - now) / 1000))
    limit.push(t === null ? `"${id}";r=${r}` : `"${id}";r=${r};t=${t}`)
  }
  if (policy.length === 0) return null
  return { 'RateLimit-Policy': policy.join(', '), RateLimit: limit.join(', ') }
}

/** A Guard (by its methods: a second copy of tollgate in node_modules makes Guards of another class). */
const isGuard = (x) => x !== null && typeof x === 'object' && typeof x.acquire === 'function' && typeof x.peek === 'function' && Array.isArray(x.limits)

/** One guard applied per request: the part every framework shares. */
class HttpGuard {
  constructor(guard, options, name) {
    if (!isGuard(guard)) throw invalidArg(`${name}(guard, options): expected a Guard, got ${v.describe(guard)}`)
    const o = v.options(options, 'options')
    v.knownKeys(o, ['key', 'limits', 'context', 'model', 'headers', 'now', 'waitMs'], 'options')
    this.guard = guard
    this.keyFn = v.fn(o.key, 'options.key')
    this.context = o.context === undefined ? (key, req) => ({ key, req }) : v.fn(o.context, 'options.context')
    this.model = o.model === undefined ? 'http' : v.id(o.model, 'options.model')
    this.headers = o.headers === undefined ? true : o.headers
    if (typeof this.headers !== 'boolean') throw invalidArg(`options.headers must be a boolean, got ${v.describe(this.headers)}`)
    this.described = this.headers ? describe(guard, o.limits) : new Map()
    this.now = o.now === undefined ? Date.now : v.fn(o.now, 'options.now')
    // A request refused by a limit that frees within waitMs waits for it instead of a 429.
    this.acquireOptions = o.waitMs === undefined || o.waitMs === 0 ? undefined : { wait: { maxMs: v.integer(o.waitMs, 'options.waitMs', 0, 600_000) } }
    this.stats = { requests: 0, refused: 0, settled: 0, settleErrors: 0 }
  }

  /** The client's key: a non-empty string, or null (the request is not guarded). */
  async key(req) {
    const k = await this.keyFn(req)
    if (k === null || k === undefined) return null
    if (typeof k !== 'string' || k.length === 0) throw invalidArg(`options.key(req) must return a non-empty string (or null to let the request through unguarded), got ${v.describe(k)}`)
    return k
  }

  /** The decision for this request and the headers to send with its response. */
  async decide(key, req) {
    this.stats.requests++
    const d = await this.guard.acquire(this.context(key, req), { model: this.model, tokens: 0, maxTokens: 0 }, this.acquireOptions)
    const headers = rateLimitHeaders(this.described, d, this.now()) || {}
    if (d.ok) return { d, headers, refusal: null }
    this.stats.refused++
    const retry = d.retryAfterMs === null ? null : Math.ceil(d.retryAfterMs / 1000)
    if (retry !== null) headers['Retry-After'] = String(retry)
    headers['Content-Type'] = 'application/problem+json'
    const body = JSON.stringify({
      type: QUOTA_EXCEEDED,
      title: 'Too Many Requests',
      status: 429,
      detail: retry === null ? `refused by limit ${d.limit}: this request can never fit` : `refused by limit ${d.limit}; retry in ${retry} s`,
      'violated-policies': [d.limit],
    })
    return { d, headers, refusal: body }
  }

  /** The response is done (sent or abandoned): the request stays counted, its concurrency slot is freed. */
  end(d) {
    return d.settle(NOTHING).then(
      () => void this.stats.settled++,
      () => void this.stats.settleErrors++,
    )
  }
}

/** Runs `end` once, when a Node response closes (sent, or the client went away). */
function onClose(res, end) {
  if (res.destroyed || res.writableFinished) end()
  else res.once('close', end)
}

/**
 * express (4 and 5) middleware: `app.use(expressGuard(guard, { key: (req) => req.ip, limits }))`.
 * A `key` that throws or rejects, and a store that fails, go to express's error path.
 */
function expressGuard(guard, options) {
  const h = new HttpGuard(guard, options, 'expressGuard')
  const middleware = function tollgate(req, res, next) {
    h.key(req)
      .then((key) => {
        if (key === null) return next()
        return h.decide(key, req).then(({ d, headers, refusal }) => {
          for (const k of Object.keys(headers)) res.setHeader(k, headers[k])
          if (refusal !== null) {
            res.statusCode = 429
            res.end(refusal)
            return
          }
          onClose(res, () => h.end(d))
          next()
        })
      })
      .catch(next)
  }
  middleware.stats = () => ({ ...h.stats })
  return middleware
}

/**
 * fastify (4 and 5) `onRequest` hook: `fastify.addHook('onRequest', fastifyGuard(guard, { key:
 * (request) => request.ip, limits }))`. A `key` that throws goes to fastify's error handler.
 */
function fastifyGuard(guard, options) {
  const h = new HttpGuard(guard, options, 'fastifyGuard')
  const hook = async function tollgate(request, reply) {
    const key = await h.key(request)
    if (key === null) return
    const { d, headers, refusal } = await h.decide(key, request)
    reply.headers(headers)
    if (refusal !== null) {
      reply.code(429).send(refusal)
      return reply
    }
    onClose(reply.raw, () => h.end(d))
  }
  hook.stats = () => ({ ...h.stats })
  return hook
}

/**
 * hono (4) middleware: `app.use(honoGuard(guard, { key: (c) => c.req.header('x-api-key'),
 * limits }))`. `key` gets hono's Context. On Node (`@hono/node-server`) the decision ends when
 * the response closes; elsewhere when the response body has been read or cancelled.
 */
function honoGuard(guard, options) {
  const h = new HttpGuard(guard, options, 'honoGuard')
  const middleware = async function tollgate(c, next) {
    const key = await h.key(c)
    if (key === null) return next()
    const { d, headers, refusal } = await h.decide(key, c.req)
    if (refusal !== null) return c.body(refusal, 429, headers)
    const outgoing = c.env ? c.env.outgoing : null
    let ended = false
    const end = () => {
      if (ended) return
      ended = true
      h.end(d)
    }
    // On Node the response's close ends it (sent, or the client went away mid-handler).
    const node = outgoing !== null && typeof outgoing === 'object' && typeof outgoing.once === 'function'
    if (node) onClose(outgoing, end)
    try {
      await next()
    } catch (e) {
      end()
      throw e
    }
    for (const k of Object.keys(headers)) c.header(k, headers[k])
    if (node) return
    if (c.res.body === null) end()
    else c.res = new Response(watchStream(c.res.body, end), c.res)
  }
  middleware.stats = () => ({ ...h.stats })
  return middleware
}

// ---- express-rate-limit's Store ------------------------------------------------------------

/**
 * express-rate-limit's `store`, counted by a tollgate Guard (a sliding window of `limit`
 * requests per `windowMs`, per key) on a MemoryStore or Redis.
 */
class RateLimitStore {
  #store
  #prefix
  #guard = null
  #windowMs = 0
  #limit = 0
  #error = null
  #clock
  /** key → this process's admitted requests still in the window, oldest first: `{ d, at }`. */
  #open = new Map()
  /**
   * key → times of refused requests whose `decrement` is still to come: with
   * skipFailedRequests, express-rate-limit gives back its 429s too, which were never counted.
   */
  #refused = new Map()
  #creditRefused = false
  #sweep = null

  constructor(options) {
    const o = v.options(options, 'options')
    v.knownKeys(o, ['store', 'prefix'], 'options')
    this.#store = o.store === undefined ? new MemoryStore() : o.store
    this.#prefix = o.prefix === undefined ? 'tollgate:erl:' : v.string(o.prefix, 'options.prefix')
    const clock = this.#store !== null && typeof this.#store === 'object' ? this.#store[kClock] : null
    this.#clock = clock || Date.now
    this.prefix = this.#prefix
    this.localKeys = this.#store instanceof MemoryStore
  }

  /** Called by express-rate-limit with its options: the window and the limit. */
  init(options) {
    try {
      const windowMs = v.integer(options.windowMs, 'windowMs', 1, 7 * 86_400_000)
      if (typeof options.limit !== 'number') throw invalidArg(`tollgate's store counts a fixed limit per window: express-rate-limit's limit must be a number, got ${v.describe(options.limit)}`)
      const limit = v.integer(options.limit, 'limit', 0, Number.MAX_SAFE_INTEGER)
      // A request's hold lasts as long as the window, so an admitted request is counted for
      // exactly the window whether it is ended or not, and `decrement` can still give it back.
      this.#guard = new Guard({ store: this.#store, prefix: this.#prefix, holdTtlMs: windowMs, limits: [{ id: 'requests', scope: (ctx) => ctx.key, requests: limit, per: windowMs }] })
      this.#windowMs = windowMs
      this.#limit = limit
      this.#creditRefused = options.skipFailedRequests === true
      clearInterval(this.#sweep)
      this.#sweep = setInterval(() => this.#prune(null), windowMs)
      this.#sweep.unref()
    } catch (e) {
      this.#error = e
      throw e
    }
  }

  #ready() {
    if (this.#error !== null) throw this.#error
    if (this.#guard === null) throw invalidArg('the store was not initialised: pass it to express-rate-limit as its `store`')
    return this.#guard
  }

  /** Forgets this process's requests that left the window (of `key`, or of every key). */
  #prune(key) {
    const now = this.#clock()
    for (const map of [this.#open, this.#refused]) {
      for (const k of key === null ? [...map.keys()] : [key]) {
        const list = map.get(k)
        if (list === undefined) continue
        while (list.length > 0 && list[0].at + this.#windowMs <= now) list.shift()
        if (list.length === 0) map.delete(k)
      }
    }
  }

  static #push(map, key, x) {
    const list = map.get(key)
    if (list === undefined) map.set(key, [x])
    else list.push(x)
  }

  #resetTime(key, now) {
    const list = this.#open.get(key)
    return new Date((list && list.length > 0 ? list[0].at : now) + this.#windowMs)
  }

  /**
   * Counts one request for `key` if it fits: `totalHits` is what the window holds (limit + 1
   * when it did not fit — a refused request is not counted, unlike express-rate-limit's own
   * MemoryStore).
   */
  async increment(key) {
    const guard = this.#ready()
    this.#prune(key)
    const now = this.#clock()
    const d = await guard.acquire({ key: v.id(key, 'key') }, { model: 'http', tokens: 0, maxTokens: 0 })
    if (!d.ok) {
      if (this.#creditRefused) RateLimitStore.#push(this.#refused, key, { at: now })
      return { totalHits: this.#limit + 1, resetTime: new Date(now + (d.retryAfterMs ?? this.#windowMs)) }
    }
    RateLimitStore.#push(this.#open, key, { d, at: now })
    return { totalHits: this.#limit - d.remaining.requests, resetTime: this.#resetTime(key, now) }
  }

  /**
   * Gives back the last request counted for `key` by this process (express-rate-limit's skip
   * options); for a refused request, which was not counted, nothing.
   */
  async decrement(key) {
    this.#ready()
    this.#prune(key)
    const refused = this.#refused.get(key)
    if (refused !== undefined && refused.length > 0) {
      refused.pop()
      return
    }
    const list = this.#open.get(key)
    const last = list === undefined ? undefined : list.pop()
    if (last !== undefined) await last.d.cancel()
  }

  /**
   * Clears `key`'s window in the store (`guard.reset`): every request counted for it, by any
   * process sharing the store, is forgotten.
   */
  async resetKey(key) {
    const guard = this.#ready()
    // This process's decisions of the old window hold nothing once it is cleared: dropped.
    this.#open.delete(key)
    this.#refused.delete(key)
    await guard.reset({ key: v.id(key, 'key') })
  }

  /** `{ totalHits, resetTime }` of `key`, counting nothing. */
  async get(key) {
    const guard = this.#ready()
    this.#prune(key)
    const { remaining } = await guard.peek({ key: v.id(key, 'key') })
    const now = this.#clock()
    return { totalHits: this.#limit - remaining.requests, resetTime: this.#resetTime(key, now) }
  }

  shutdown() {
    clearInterval(this.#sweep)
    this.#sweep = null
  }
}

/** A new express-rate-limit store over tollgate: `rateLimit({ windowMs, limit, store: rateLimitStore({ store }) })`. */
function rateLimitStore(options) {
  return new RateLimitStore(options)
}

/**
 * The `RateLimit-Policy` and `RateLimit` values for a decision of `guard` (whose `limits` are
 * given), as the middleware sends them; null when no request or concurrency limit applied.
 */
function headersFor(guard, limits, decision, now) {
  if (!isGuard(guard)) throw invalidArg(`rateLimitHeaders(guard, …): expected a Guard, got ${v.describe(guard)}`)
  return rateLimitHeaders(describe(guard, limits), decision, now === undefined ? Date.now() : now)
}

module.exports = { expressGuard, fastifyGuard, honoGuard, rateLimitStore, rateLimitHeaders: headersFor, RateLimitStore, DRAFT }
