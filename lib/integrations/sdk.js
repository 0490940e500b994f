'use strict'
// What the OpenAI and Anthropic wrappers share: a guarded call (acquire → call → settle or
// cancel, as `guard.run` does), a guarded stream (settled when it ends, is aborted or errors,
// with the usage seen so far), the provider's rate-limit headers fed back, a client view per
// context, and the wrapper's counters. Each SDK file says only how its requests and events
// look. No limit is implemented here: every decision is the guard's.

const { invalidArg, codes } = require('../errors')
const v = require('../validate')
const { streamUsage } = require('../usage')
const { countTokens } = require('../tokens')
const { feedbackFrom } = require('../provider-headers')
const { limitedError: limited, kCaches } = require('../guard')

const OPTIONS = ['context', 'apiKey', 'tags', 'feedback', 'now', 'waitMs']
const FALLBACK = { fallback: 'o200k_base' }

/** The SDK's major version from a client (`OpenAI/JS 7.57.0`), or null. */
function majorOf(client) {
  let agent = null
  try {
    agent = typeof client.getUserAgent === 'function' ? client.getUserAgent() : null
  } catch {
    agent = null
  }
  const m = typeof agent === 'string' ? /\/JS (\d+)\.\d+/.exec(agent) : null
  return m ? Number(m[1]) : null
}

/** Throws unless `client` is a client of `sdk` at a supported major version. */
function checkClient(client, sdk, supported, probe) {
  if (client === null || typeof client !== 'object' || !probe(client)) {
    throw invalidArg(`expected a client of the ${sdk} package (new ${sdk === 'openai' ? 'OpenAI' : 'Anthropic'}(…)), got ${v.describe(client)}`)
  }
  const major = majorOf(client)
  if (major === null || !supported.includes(major)) {
    throw invalidArg(
      `tollgate supports ${sdk} ${supported.map((m) => `${m}.x`).join(', ')}; this client is ${major === null ? 'of an unknown version' : `${sdk} ${major}.x`}. Install a supported version (npm install ${sdk}@${supported[supported.length - 1]}).`,
    )
  }
  return major
}

/** `guard.run`'s refusal, for a decision or the provider's own "exhausted until". */
/** A promise of the call's data that also answers `withResponse()` and `asResponse()`, as the SDKs' APIPromise. */
function apiPromise(full) {
  const data = full.then((r) => r.data)
  // A caller of withResponse() alone (the SDKs' own helpers) leaves `data` unread: its
  // rejection is theirs through `full`, not an unhandled one.
  data.catch(() => {})
  data.withResponse = () => full
  data.asResponse = () => full.then((r) => r.response)
  return data
}

/** A stand-in Response for an answer from the cache (no request was made). */
function cachedResponse(data) {
  return new Response(JSON.stringify(data), { status: 200, headers: { 'content-type': 'application/json', 'x-tollgate-cache': 'hit' } })
}

/**
 * A view of `target` where the names in `overrides` answer first; every other property is the
 * target's own (functions bound to it, so private fields keep working).
 */
function view(target, overrides) {
  return new Proxy(target, {
    get(t, prop) {
      if (Object.prototype.hasOwnProperty.call(overrides, prop)) return overrides[prop]
      const x = Reflect.get(t, prop, t)
      return typeof x === 'function' ? x.bind(t) : x
    },
    has(t, prop) {
      return Object.prototype.hasOwnProperty.call(overrides, prop) || Reflect.has(t, prop)
    },
  })
}

class Wrapper {
  constructor(guard, options, sdk) {
    if (guard === null || typeof guard !== 'object' || typeof guard.acquire !== 'function' || typeof guard.peek !== 'function') {
      throw invalidArg(`guard must be a tollgate Guard, got ${v.describe(guard)}`)
    }
    const o = v.options(options, 'options')
    v.knownKeys(o, OPTIONS, 'options')
    this.guard = guard
    this.sdk = sdk
    this.context = o.context === undefined ? () => undefined : v.fn(o.context, 'options.context')
    this.apiKey = o.apiKey === undefined ? defaultApiKey : v.fn(o.apiKey, 'options.apiKey')
    this.tags = o.tags === undefined ? null : v.fn(o.tags, 'options.tags')
    if (o.feedback !== undefined && typeof o.feedback !== 'boolean') throw invalidArg(`options.feedback must be a boolean, got ${v.describe(o.feedback)}`)
    this.feedback = o.feedback !== false
    this.now = o.now === undefined ? Date.now : v.fn(o.now, 'options.now')
    /** Up to how long a refused call waits for capacity (the guard's `wait`), ms; 0: not at all. */
    this.waitMs = o.waitMs === undefined ? 0 : v.integer(o.waitMs, 'options.waitMs', 0, 600_000)
    /** Key id ('' for the client's own key) → until when the provider said it is exhausted. */
    this.exhausted = new Map()
    /** What `guarded.tollgate` shows, made once. */
    this.shown = null
    this.counts = { calls: 0, refused: 0, cached: 0, settled: 0, cancelled: 0, streams: 0, aborted: 0, noUsage: 0, settleErrors: 0, providerRefused: 0, providerExhausted: 0, keysPaused: 0, pauseErrors: 0, headersIgnored: 0 }
  }

  stats() {
    return { ...this.counts, exhausted: Object.fromEntries([...this.exhausted].filter(([, until]) => until > this.now())) }
  }

  /** The provider's refusal of `keyId` when it said the key is exhausted, or null. */
  #providerRefusal(keyId) {
    if (!this.feedback) return null
    const until = this.exhausted.get(keyId)
    if (until === undefined) return null
    const left = until - this.now()
    if (left <= 0) {
      this.exhausted.delete(keyId)
      return null
    }
    this.counts.providerRefused++
    return { ok: false, limit: 'provider', retryAfterMs: left, remaining: {}, key: null, cached: null, providerKey: keyId }
  }

  /**
   * Reads the provider's rate-limit headers of a response or an error. A key it says is
   * exhausted waits here (this process) and, when the guard routed it, is paused in the
   * guard's Quota until then (every process sharing its store): the promise of that write, or
   * undefined.
   */
  note(headers, status, keyId, ctx) {
    if (!this.feedback || headers === undefined || headers === null) return undefined
    const now = Math.floor(this.now())
    let f
    try {
      f = feedbackFrom(headers, status, now, this.sdk)
    } catch {
      return undefined
    }
    this.counts.headersIgnored += f.ignored
    if (f.until <= 0) return undefined
    this.exhausted.set(keyId, Math.max(f.until, this.exhausted.get(keyId) || 0))
    this.counts.providerExhausted++
    if (keyId === '') return undefined
    return this.guard.pause(ctx, keyId, f.until).then(
      (recorded) => {
        if (recorded) this.counts.keysPaused++
      },
      () => {
        this.counts.pauseErrors++
      },
    )
  }

  /**
   * One guarded call. `build()` (run at once, so an AsyncLocalStorage context holds) makes
   * `{ ctx, body, model, messages?, tokens, maxTokens (null: none), params? (a function making the cache key's params), cacheable, stream, options,
   * invoke(requestOptions) → APIPromise, authHeaders(secret), track? }`.
   * Returns an APIPromise-like of the SDK's answer.
   */
  run(build) {
    return apiPromise(this.#run(build))
  }

  /** What `guarded.tollgate` shows: the guard, the client underneath, the counters. */
  info(client) {
    return (this.shown ??= { guard: this.guard, client, stats: () => this.stats(), available: (keys) => this.available(keys) })
  }

  /**
   * `keys` without those the provider said are exhausted: the guard's `routing.keys` can pass
   * its keys through it so that the Quota routes around them.
   */
  available(keys) {
    if (!Array.isArray(keys)) throw invalidArg(`keys must be an array of Quota keys, got ${v.describe(keys)}`)
    if (!this.feedback || this.exhausted.size === 0) return keys
    const now = this.now()
    return keys.filter((k) => {
      const until = k === null || typeof k !== 'object' ? undefined : this.exhausted.get(String(k.id))
      return until === undefined || until <= now
    })
  }

  /**
   * The output estimate of a call without its own cap: the guard's `defaultMaxTokens` (the
   * guard applies it itself; this is for settling with the estimate).
   */
  defaultMaxTokens() {
    return this.guard.defaultMaxTokens
  }

  async #run(build) {
    this.counts.calls++
    const c = build()
    // The client's own key (no routing): refused here, before the guard counts anything.
    const own = this.#providerRefusal('')
    if (own !== null) throw limited(own)
    const request = { model: c.model, tokens: c.tokens }
    // Without a cap of its own, the guard's defaultMaxTokens is the output estimate.
    if (c.maxTokens !== null) request.maxTokens = c.maxTokens
    if (c.cacheable && c.messages !== undefined) {
      request.messages = c.messages
      // The cache key's params, built only for a guard that caches (or one that does not say).
      if (c.params !== undefined && this.guard[kCaches] !== false) request.params = c.params()
    }
    if (this.tags !== null) request.tags = this.tags(c.ctx, c.body)
    // Waiting, the call's own abort signal stops the wait.
    const d = this.waitMs === 0 ? await this.guard.acquire(c.ctx, request) : await this.guard.acquire(c.ctx, request, { wait: { maxMs: this.waitMs }, signal: c.options && c.options.signal ? c.options.signal : undefined })
    if (!d.ok) {
      this.counts.refused++
      throw limited(d)
    }
    if (d.cached !== null) {
      this.counts.cached++
      return { data: d.cached, response: cachedResponse(d.cached), request_id: null }
    }
    const keyId = d.key === null ? '' : String(d.key.id)
    let options = c.options
    if (d.key !== null) {
      const p = this.#providerRefusal(keyId)
      if (p !== null) {
        await d.cancel()
        throw limited(p)
      }
      let secret
      try {
        secret = this.apiKey(d.key)
        if (typeof secret !== 'string' || secret.length === 0) throw invalidArg(`options.apiKey(key) must return the key's secret (a non-empty string), got ${v.describe(secret)} for key ${JSON.stringify(keyId)}`)
      } catch (e) {
        await d.cancel()
        throw e
      }
      options = { ...options, headers: { ...(options && options.headers), ...c.authHeaders(secret) } }
    }
    let full
    try {
      full = await c.invoke(options).withResponse()
    } catch (e) {
      const noted = this.note(e && e.headers, e && e.status, keyId, c.ctx)
      if (noted !== undefined) await noted
      this.counts.cancelled++
      await d.cancel().catch(() => {})
      throw e
    }
    const noted = this.note(full.response && full.response.headers, full.response && full.response.status, keyId, c.ctx)
    if (noted !== undefined) await noted
    if (c.stream) {
      this.counts.streams++
      this.#track(full.data, d, c)
      return full
    }
    try {
      // The answer read once, by the settle.
      await d.settle(full.data)
    } catch (e) {
      if (!e || e.code !== codes.NO_USAGE) throw e
      // No usage in the answer (the decision is still open): the estimate stands.
      this.counts.noUsage++
      await d.settle({ inputTokens: c.tokens, outputTokens: this.#output(c) })
    }
    this.counts.settled++
    return full
  }

  /** The call's output estimate. */
  #output(c) {
    return c.maxTokens === null ? this.defaultMaxTokens() : c.maxTokens
  }

  /**
   * Settles `d` when `stream` ends, is aborted (the reader stopped) or fails. The events pass
   * through an iterator of plain promises (not an async generator: no generator resumed and
   * no extra promise per event).
   */
  #track(stream, d, c) {
    const inner = stream.iterator
    const self = this
    const usage = streamUsage()
    let text = ''
    let started = false
    stream.iterator = function tracked() {
      if (started) return inner.call(stream) // a second read: the SDK says why it cannot
      started = true
      const it = inner.call(stream)
      /** Settling or settled: the tracked stream answers done from then on. */
      let over = false
      // Ended: a failed settle is the caller's error. Stopped or failed: the stream's own error
      // (or the reader's return) goes on; the settle's failure is counted.
      const stop = () => {
        self.counts.aborted++
        return self.#settleStream(d, c, usage, text, false).catch(() => {
          self.counts.settleErrors++
        })
      }
      const failed = (e) => {
        if (over) throw e
        over = true
        return stop().then(() => {
          throw e
        })
      }
      const step = (r) => {
        if (over) return { done: true, value: undefined }
        if (r.done) {
          over = true
          return self.#settleStream(d, c, usage, text, true).then(() => r)
        }
        const event = r.value
        let hidden
        try {
          try {
            usage.add(event)
          } catch {
            // an event tollgate does not know: it carries no usage
          }
          text += c.track.text(event)
          hidden = c.track.hide(event)
        } catch (e) {
          // As a loop body that threw: the source is closed, then the stream settles.
          over = true
          return Promise.resolve(typeof it.return === 'function' ? it.return() : undefined)
            .catch(() => {})
            .then(stop)
            .then(() => {
              throw e
            })
        }
        return hidden ? it.next().then(step, failed) : r
      }
      const close = (value, error, thrown) => {
        if (over) return thrown ? Promise.reject(error) : Promise.resolve({ done: true, value })
        over = true
        const closing = typeof it.return === 'function' ? Promise.resolve(it.return(value)) : Promise.resolve()
        return closing.then(
          () => stop().then(() => (thrown ? Promise.reject(error) : { done: true, value })),
          (e) => stop().then(() => Promise.reject(e)),
        )
      }
      return {
        next() {
          if (over) return Promise.resolve({ done: true, value: undefined })
          return it.next().then(step, failed)
        },
        return(value) {
          return close(value, undefined, false)
        },
        throw(error) {
          return close(undefined, error, true)
        },
        [Symbol.asyncIterator]() {
          return this
        },
      }
    }
  }

  /** The usage of a stream that ended (or stopped) with what it showed. */
  #settleStream(d, c, usage, text, ended) {
    try {
      let used
      if (usage.complete) used = usage.final()
      else {
        const seen = usage.usage
        const counted = text.length === 0 ? 0 : countTokens(text, c.model, FALLBACK)
        if (seen !== null) used = { ...seen, outputTokens: Math.max(seen.outputTokens, counted) }
        else {
          // No usage seen: the input estimate, and the output read so far (all of the
          // estimate when the stream ended without saying what it used).
          if (ended) this.counts.noUsage++
          used = { inputTokens: c.tokens, outputTokens: ended ? Math.max(this.#output(c), counted) : counted }
        }
      }
      return d.settle(used).then(() => {
        this.counts.settled++
      })
    } catch (e) {
      return Promise.reject(e)
    }
  }
}

function defaultApiKey(key) {
  return key.apiKey
}

/** The request body, checked for what the estimate needs. */
function bodyOf(body, what) {
  const b = v.options(body, 'body')
  if (typeof b.model !== 'string' || b.model.length === 0) throw invalidArg(`${what}: body.model must be the model's name, got ${v.describe(b.model)}`)
  return b
}

/** The first valid output cap of a request (an integer ≥ 0), or null. */
function capOf(...caps) {
  for (const c of caps) if (typeof c === 'number' && Number.isInteger(c) && c >= 0) return c
  return null
}

/** Tokens of an embeddings input (a string, strings, or token arrays). */
function embeddingTokens(input, model) {
  if (typeof input === 'string') return countTokens(input, model, FALLBACK)
  if (!Array.isArray(input)) return 0
  if (input.every((x) => typeof x === 'number')) return input.length
  let n = 0
  for (const x of input) n += typeof x === 'string' ? countTokens(x, model, FALLBACK) : Array.isArray(x) ? x.length : 0
  return n
}

/** The body without the keys named (the rest are the cache key's params). */
function without(body, names) {
  const out = {}
  for (const k of Object.keys(body)) if (!names.includes(k)) out[k] = body[k]
  return out
}

module.exports = { Wrapper, view, checkClient, bodyOf, capOf, embeddingTokens, without, FALLBACK }
