'use strict'
// rateLimitsFrom: what a provider's response headers say about its rate limits, in one shape.
//
// - OpenAI: `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`; a reset is a duration
//   (`6m0s`, `1s`, `20ms`, `1.5s`, `1h2m3.5s`; Go's `time.Duration` format).
// - Anthropic: `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}`;
//   a reset is an RFC 3339 time (`2026-12-04T08:30:00Z`).
// - Both: `retry-after` (seconds, or an HTTP date) and `retry-after-ms`.
// An absent header is left out; a malformed one is left out and its name listed in `ignored`.
// Nothing here throws on what a server sent.

const v = require('./validate')
const { invalidArg } = require('./errors')

const BUCKETS = [
  ['requests', 'requests'],
  ['tokens', 'tokens'],
  ['inputTokens', 'input-tokens'],
  ['outputTokens', 'output-tokens'],
]
/** Per bucket, the header names of each provider's family, built once. */
const NAMES = BUCKETS.map(([field, suffix]) => {
  const fams = suffix === 'requests' || suffix === 'tokens' ? [`x-ratelimit-%-${suffix}`, `anthropic-ratelimit-${suffix}-%`] : [`anthropic-ratelimit-${suffix}-%`]
  return [field, fams.map((fam) => ({ anthropic: fam.startsWith('anthropic'), limit: fam.replace('%', 'limit'), remaining: fam.replace('%', 'remaining'), reset: fam.replace('%', 'reset') }))]
})
const DURATION_UNITS = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 0.001, 'µs': 0.001, ns: 0.000001 }
const DURATION = /^(?:\d+(?:\.\d+)?(?:h|ms|m|s|us|µs|ns))+$/
const DURATION_PART = /(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)/g
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$/
const COUNT = /^\d{1,16}$/
const SECONDS = /^\d+(?:\.\d+)?$/

/** A header reader over a `Headers`, a Map, or a plain record (any case; an array's first value). */
function readerOf(headers) {
  if (headers === undefined || headers === null) return () => undefined
  if (typeof headers !== 'object') throw invalidArg(`headers must be a Headers object or a record of header values, got ${v.describe(headers)}`)
  if (typeof headers.get === 'function') {
    return (name) => {
      const x = headers.get(name)
      return x === null || x === undefined ? undefined : Array.isArray(x) ? x[0] : String(x)
    }
  }
  const lower = new Map()
  for (const k of Object.keys(headers)) {
    const x = headers[k]
    if (x === undefined || x === null) continue
    lower.set(k.toLowerCase(), Array.isArray(x) ? x[0] : String(x))
  }
  return (name) => lower.get(name)
}

/** Milliseconds in an OpenAI reset duration (`6m0s`, `20ms`, `1.5s`), or NaN. A bare number is seconds. */
function durationMs(text) {
  if (SECONDS.test(text)) return Number(text) * 1000
  if (!DURATION.test(text)) return NaN
  let ms = 0
  for (const [, n, unit] of text.matchAll(DURATION_PART)) ms += Number(n) * DURATION_UNITS[unit]
  return ms
}

/**
 * The provider's rate limits from response headers (of a success or a 429):
 * `{ requests?, tokens?, inputTokens?, outputTokens?, retryAfterMs?, ignored }`, each limit
 * `{ limit?, remaining?, resetMs?, resetAt? }` (reset as milliseconds from `now` and as an
 * epoch time, both when the header was valid). `ignored` lists the malformed headers.
 * `options.now` (ms, default `Date.now()`) is the time the headers were received.
 */
function rateLimitsFrom(headers, options) {
  const o = v.options(options, 'options')
  v.knownKeys(o, ['now'], 'options')
  const now = o.now === undefined ? Date.now() : v.integer(o.now, 'options.now', 0, Number.MAX_SAFE_INTEGER)
  const get = readerOf(headers)
  const out = { ignored: [] }
  const bad = (name) => out.ignored.push(name)

  for (const [field, fams] of NAMES) {
    const b = {}
    for (const { anthropic, limit, remaining, reset } of fams) {
      for (const [part, name] of [
        ['limit', limit],
        ['remaining', remaining],
      ]) {
        const x = get(name)
        if (x === undefined) continue
        const t = x.trim()
        if (COUNT.test(t)) b[part] = Number(t)
        else bad(name)
      }
      const name = reset
      const x = get(name)
      if (x === undefined) continue
      const t = x.trim()
      if (anthropic) {
        const at = RFC3339.test(t) ? Date.parse(t) : NaN
        if (Number.isFinite(at)) {
          b.resetAt = at
          b.resetMs = Math.max(0, at - now)
        } else bad(name)
      } else {
        const ms = durationMs(t)
        if (Number.isFinite(ms)) {
          b.resetMs = Math.ceil(ms)
          b.resetAt = now + b.resetMs
        } else bad(name)
      }
    }
    if (Object.keys(b).length > 0) out[field] = b
  }

  const ms = get('retry-after-ms')
  if (ms !== undefined) {
    if (SECONDS.test(ms.trim())) out.retryAfterMs = Math.ceil(Number(ms.trim()))
    else bad('retry-after-ms')
  }
  const ra = get('retry-after')
  if (ra !== undefined) {
    const t = ra.trim()
    let after = NaN
    if (SECONDS.test(t)) after = Math.ceil(Number(t) * 1000)
    else if (/[A-Za-z]/.test(t)) {
      const at = Date.parse(t)
      if (Number.isFinite(at)) after = Math.max(0, at - now)
    }
    if (!Number.isFinite(after)) bad('retry-after')
    // retry-after-ms is the finer of the two when both are valid.
    else if (out.retryAfterMs === undefined) out.retryAfterMs = after
  }
  return out
}

/**
 * Until when the headers say a key is exhausted, or 0. After a 429: `retry-after(-ms)` when
 * given, else the latest reset of a limit with nothing remaining, else a second. After a
 * success: the latest reset of a limit with nothing remaining (the providers' resets are the
 * time until the limit is whole again: cautious, never early).
 */
function exhaustedUntil(limits, status, now) {
  let until = 0
  for (const [field] of BUCKETS) {
    const b = limits[field]
    if (b && b.remaining === 0 && b.resetAt !== undefined) until = Math.max(until, b.resetAt)
  }
  if (status === 429) {
    if (limits.retryAfterMs !== undefined) until = now + limits.retryAfterMs
    else if (until <= now) until = now + 1000
  }
  return until > now ? until : 0
}

/** Per provider, the headers that say what is left (what a success is read for first). */
const REMAINING = {
  openai: ['x-ratelimit-remaining-requests', 'x-ratelimit-remaining-tokens'],
  anthropic: ['anthropic-ratelimit-requests-remaining', 'anthropic-ratelimit-tokens-remaining', 'anthropic-ratelimit-input-tokens-remaining', 'anthropic-ratelimit-output-tokens-remaining'],
}
const NOTHING = Object.freeze({ until: 0, ignored: 0 })

/**
 * What the SDK wrappers read from each response: until when its headers say the key is
 * exhausted (0: it is not), and how many headers were malformed. The whole set is parsed only
 * after a 429, or when one of `provider`'s remaining-headers says 0 or cannot be read; any
 * other answer costs one header lookup per remaining-header (a call's usual case).
 */
function feedbackFrom(headers, status, now, provider) {
  if (headers === undefined || headers === null || typeof headers !== 'object') return NOTHING
  if (status !== 429) {
    const get = readerOf(headers)
    let look = false
    for (const name of REMAINING[provider]) {
      const x = get(name)
      if (x === undefined) continue
      const t = x.trim()
      if (!COUNT.test(t) || Number(t) === 0) {
        look = true
        break
      }
    }
    if (!look) return NOTHING
  }
  const limits = rateLimitsFrom(headers, { now })
  return { until: exhaustedUntil(limits, status, now), ignored: limits.ignored.length }
}

module.exports = { rateLimitsFrom, exhaustedUntil, feedbackFrom, durationMs }
