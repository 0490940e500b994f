'use strict'
// The in-process backend: every model's limits counted in this process, by JobLimitsCore (the
// limit maths of engine/jobs.rs: fixed minute / UTC-day windows or sliding ones, reserve an
// estimate, settle window-aware). Every answer is synchronous, so a job that fits is granted in
// the same tick it asked. It implements the backend interface described in index.js; the Redis
// backend (backend-redis.js) implements the same one and uses `reserveOn` for its 'local' twin.

const native = require('../native')
const { flush } = require('../policy')

/** Refusals carry no per-call data: one object each. */
const NEVER = Object.freeze({ never: true })
const UNTIL_RELEASE = Object.freeze({ retryInMs: -1 })

/**
 * Reserves a job of type `t` on model `m` of a JobLimitsCore: a grant `{grant, model}`, or a
 * refusal (`NEVER` when the estimate exceeds a limit outright, else `{retryInMs}`, -1 when
 * only concurrency blocks and a release makes room). The core answers a number: ≥ 0 a grant,
 * -1 concurrency, -2 never, else -(ms + 3).
 */
/** Every model's limits counted in this process (the native JobLimitsCore behind its handle). */
class Limits {
  #core
  constructor(limits, sliding) {
    this.#core = native.jobLimitsNew(limits, sliding)
  }

  /** ≥ 0 a grant (the minute reserved in), -1 concurrency, -2 never, else -(ms + 3). */
  reserve(m, tokens, requests, now) {
    return native.jobLimitsReserve(this.#core, m, tokens, requests, now)
  }

  settle(m, grant, estTokens, estRequests, tokens, requests, release, now) {
    native.jobLimitsSettle(this.#core, m, grant, estTokens, estRequests, tokens, requests, release, now)
  }

  /** `[minute tokens, minute requests, day tokens, day requests, in flight, now, ms until each drops]`. */
  counts(m, now) {
    return native.jobLimitsCounts(this.#core, m, now)
  }
}

function reserveOn(core, m, t, now) {
  const r = core.reserve(m, t.tokens, t.requests, now)
  if (r >= 0) return { grant: r, model: m }
  if (r === -1) return UNTIL_RELEASE
  if (r === -2) return NEVER
  return { retryInMs: -r - 3 }
}

class LocalBackend {
  #core
  #clock

  /** @param cfg the limiter's configuration (config.js) */
  constructor(cfg) {
    this.#core = new Limits(cfg.limits, cfg.sliding)
    this.#clock = cfg.clock
  }

  /** Nothing to start: in-process limits are ready at once. */
  get started() {
    return true
  }

  start() {
    return Promise.resolve()
  }

  stop() {
    return Promise.resolve()
  }

  flush() {
    return flush(null)
  }

  acquire(m, t) {
    return reserveOn(this.#core, m, t, this.#clock.nativeNow())
  }

  release(g, t, actual, now) {
    this.#core.settle(g.model, g.grant, t.tokens, t.requests, actual.tokens, actual.requests, true, now)
  }

  counts(m) {
    return this.#core.counts(m, this.#clock.nativeNow())
  }

  /** A refusal until a window resets: wake then; one on concurrency: the release wakes the queue. */
  wakeDelay(retryInMs) {
    return retryInMs
  }

  /** No store, no store counters. */
  storeStats() {
    return undefined
  }
}

module.exports = { LocalBackend, Limits, reserveOn, NEVER }
