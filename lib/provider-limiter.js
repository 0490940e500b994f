'use strict'
// ProviderLimiter: a multi-worker app's global limit per LLM provider shared by every worker —
// `points` per `duration` seconds on a self-expiring Redis hash `<keyPrefix>:<scope>`
// (fields `points` left and `expire`), plus `run()` that waits its turn and a `health()`
// report. The algorithm is engine/provider_limit.rs (provider.lua on Redis).

const native = require('./native')
const { codes, fromNative, rethrow, invalidArg } = require('./errors')
const { bump, snapshot, flush } = require('./policy')
const { setUp, storePolicy } = require('./setup')
const v = require('./validate')

const MAX_POINTS = Number.MAX_SAFE_INTEGER

/** Most keys whose last Redis answer is kept for 'local' (the oldest go first). */
const MAX_SEEN = 10_000

class ProviderLimiter {
  #providers = new Map()
  #memory
  #clock
  #native
  #stats
  #fallback = null
  /** key → what Redis last said of it: `[remaining, at, resetAt]` (ms), for 'local'. */
  #seen = null

  constructor(store, options) {
    const c = setUp('ProviderLimiter', store, options, ['providers'])
    const o = c.options
    this.#stats = c.stats
    const providers = v.options(o.providers, 'options.providers')
    if (Object.keys(providers).length === 0) throw invalidArg('options.providers must name at least one provider')
    this.#native = c.native
    this.#memory = c.memory
    this.#clock = c.clock
    for (const [name, cfg] of Object.entries(providers)) {
      const c = v.knownKeys(v.options(cfg, `options.providers.${name}`), ['points', 'duration', 'keyPrefix'], `options.providers.${name}`)
      const points = v.integer(c.points, `options.providers.${name}.points`, 1, MAX_POINTS)
      const durationMs = v.seconds(c.duration ?? 60, `options.providers.${name}.duration`, 366 * 86400)
      // Keys are `<keyPrefix>:<scope>`; the default keyPrefix encodes the provider's name as a
      // key part (store::key), so provider `a:b` + scope `c` and provider `a` + scope `b:c` differ.
      const base = c.keyPrefix === undefined ? native.storeKey('ratelimit:', [name, '']) : `${v.string(c.keyPrefix, `options.providers.${name}.keyPrefix`)}:`
      const keyPrefix = base.slice(0, -1)
      this.#providers.set(name, {
        points,
        durationMs,
        keyPrefix,
        core: native.providerNew(this.#native, base, points, durationMs),
        running: 0,
        queued: 0,
        done: 0,
      })
    }
    const prefixes = [...this.#providers.values()].map((p) => p.keyPrefix).join(',')
    const { fallback, policy } = storePolicy('ProviderLimiter', prefixes, c, {
      twin: (store, mark) => new ProviderLimiter(store, { providers, ...mark }),
      // Points taken while Redis was away are taken there too once it is back (a counter at 0
      // stays at 0: what did not fit is moot).
      replay: (op) => native.providerConsumeAsync(this.#providers.get(op.provider).core, op.scope, op.points, op.now).catch(rethrow),
    })
    this.#fallback = fallback
    if (!this.#memory && policy === 'local') this.#seen = new Map()
  }

  /** Decisions, refusals, and what the store failure policy did. */
  stats() {
    return snapshot(this.#stats, this.#fallback)
  }

  /** Pushes points taken during a Redis outage (under 'fail-open' or 'local') to Redis now. */
  flush() {
    return flush(this.#fallback)
  }

  #provider(name) {
    v.id(name, 'provider')
    const p = this.#providers.get(name)
    if (!p) throw invalidArg(`unknown provider ${JSON.stringify(name)}; configured: ${[...this.#providers.keys()].join(', ')}`)
    return p
  }

  /** Takes `points` (default 1) from `provider`'s `scope` (default "global"). */
  tryConsume(provider, scope = 'global', points = 1) {
    try {
      const p = this.#provider(provider)
      v.id(scope, 'scope')
      v.integer(points, 'points', 0, MAX_POINTS)
      const now = this.#clock ? this.#clock() : -1
      const shape = (d) => this.#count({ allowed: d[0] === 1, remaining: d[1], retryInMs: d[2], resetAt: d[3] })
      if (this.#memory) return Promise.resolve(shape(native.providerConsume(p.core, scope, points, now)))
      const at = now >= 0 ? now : Date.now()
      return this.#fallback.run(
        () => native.providerConsumeAsync(p.core, scope, points, now).then((d) => (this.#saw(provider, scope, d, at), shape(d)), rethrow),
        () => this.#count({ allowed: true, remaining: p.points, retryInMs: 0, resetAt: at + p.durationMs }),
        (l) => (this.#seed(l, provider, scope), l.tryConsume(provider, scope, points).then((d) => this.#count({ ...d }))),
        (d) => (d.allowed ? { provider, scope, points, now } : null),
      )
    } catch (e) {
      return Promise.reject(fromNative(e))
    }
  }

  #count(d) {
    this.#stats.decisions++
    if (!d.allowed) bump(this.#stats.refused, 'points')
    return d
  }

  // 'local' starts from what this process last saw: the twin's counter for a key is brought
  // down to the points Redis last said were left (taken at that time), once per outage.
  #saw(provider, scope, d, at) {
    if (this.#seen === null) return
    const key = JSON.stringify([provider, scope])
    if (this.#seen.size >= MAX_SEEN && !this.#seen.has(key)) this.#seen.delete(this.#seen.keys().next().value)
    this.#seen.set(key, [d[1], at, d[3]])
  }

  #seed(twin, provider, scope) {
    const key = JSON.stringify([provider, scope])
    const seen = this.#seen === null ? undefined : this.#seen.get(key)
    if (seen === undefined) return
    this.#seen.delete(key)
    const [remaining, at, resetAt] = seen
    if ((this.#clock ? this.#clock() : Date.now()) >= resetAt) return // a new period
    const core = twin.#providers.get(provider).core
    const lacking = native.providerConsume(core, scope, 0, at)[1] - remaining
    if (lacking > 0) native.providerConsume(core, scope, lacking, at)
  }

  /** Runs `fn` once `provider` has a point for it, waiting (up to `maxWaitMs`, default 60 s) for refills. */
  async run(provider, fn, options) {
    const p = this.#provider(provider)
    v.fn(fn, 'fn')
    const o = v.options(options, 'options')
    const scope = o.scope === undefined ? 'global' : o.scope
    const maxWaitMs = o.maxWaitMs === undefined ? 60_000 : v.millis(o.maxWaitMs, 'options.maxWaitMs', 2 ** 31 - 1)
    const deadline = Date.now() + maxWaitMs
    p.queued++
    try {
      for (;;) {
        const d = await this.tryConsume(provider, scope)
        if (d.allowed) break
        const left = deadline - Date.now()
        if (left <= 0) {
          const e = new Error(`no ${provider} capacity within ${maxWaitMs} ms`)
          e.code = codes.NO_CAPACITY
          throw e
        }
        // Not unref'd: the caller awaits this wait, which maxWaitMs bounds.
        await new Promise((r) => setTimeout(r, Math.max(1, Math.min(d.retryInMs, left))))
      }
    } finally {
      p.queued--
    }
    p.running++
    try {
      return await fn()
    } finally {
      p.running--
      p.done++
    }
  }

  /** The multi-worker key reference's health JSON: Redis connection and figures, and per provider the local counts. */
  async health() {
    const local = {}
    const distributed = {}
    for (const [name, p] of this.#providers) {
      local[name] = { running: p.running, queued: p.queued, done: p.done }
      distributed[name] = { type: this.#memory ? 'local' : 'distributed', redis: !this.#memory }
    }
    const redis = { connected: false, enabled: !this.#memory, usedMemory: null, connectedClients: null }
    let status = 'ok'
    if (!this.#memory) {
      try {
        const info = await native.providerInfo([...this.#providers.values()][0].core)
        const field = (k) => {
          const m = new RegExp(`^${k}:(.*)$`, 'm').exec(info)
          return m ? m[1].trim() : null
        }
        Object.assign(redis, { connected: true, usedMemory: field('used_memory_human'), connectedClients: field('connected_clients') })
      } catch {
        status = 'degraded'
      }
    }
    return { status, redis, rateLimiting: { mode: this.#memory ? 'local' : 'distributed', local, distributed } }
  }
}

module.exports = { ProviderLimiter }
