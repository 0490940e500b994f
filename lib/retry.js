'use strict'
// withRetry: retry an LLM call the way the providers ask. 429 waits what the server says
// (`retry-after-ms`, or `retry-after` in seconds or as an HTTP date); 5xx and network errors
// back off exponentially with full jitter; any other 4xx is thrown at once. Works with the
// errors the OpenAI and Anthropic SDKs throw (status + headers), fetch and Node network errors.

const { invalidArg } = require('./errors')
const v = require('./validate')

const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'ECONNABORTED',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
])
const NETWORK_NAMES = new Set(['APIConnectionError', 'APIConnectionTimeoutError', 'FetchError'])

/** The HTTP status of an error from an SDK, fetch wrapper or axios, if any. */
function statusOf(err) {
  if (err === null || typeof err !== 'object') return undefined
  const s = err.status ?? err.statusCode ?? (err.response && err.response.status)
  return typeof s === 'number' ? s : undefined
}

/** A response header from a `Headers` object or a plain record, case-insensitively. */
function headerOf(err, name) {
  const h = (err && err.headers) || (err && err.response && err.response.headers)
  if (!h || typeof h !== 'object') return undefined
  if (typeof h.get === 'function') return h.get(name) ?? undefined
  for (const k of Object.keys(h)) if (k.toLowerCase() === name) return Array.isArray(h[k]) ? h[k][0] : h[k]
  return undefined
}

function isNetworkError(err) {
  for (let e = err, depth = 0; e && typeof e === 'object' && depth < 4; e = e.cause, depth++) {
    if (NETWORK_CODES.has(e.code) || NETWORK_NAMES.has(e.constructor && e.constructor.name) || NETWORK_NAMES.has(e.name)) return true
    if (e.name === 'TypeError' && e.message === 'fetch failed') return true
  }
  return false
}

/** Milliseconds the server asked to wait, or undefined. */
function retryAfterMs(err, now) {
  const ms = Number(headerOf(err, 'retry-after-ms'))
  if (Number.isFinite(ms) && ms >= 0) return ms
  const ra = headerOf(err, 'retry-after')
  if (ra === undefined || ra === null || ra === '') return undefined
  const seconds = Number(ra)
  if (Number.isFinite(seconds)) return seconds >= 0 ? seconds * 1000 : undefined
  const at = Date.parse(String(ra))
  return Number.isFinite(at) ? Math.max(0, at - now) : undefined
}

/**
 * What to do after `err` on attempt `attempt` (0-based): `{ retry: false }` or
 * `{ retry: true, delayMs, reason }`.
 */
function decide(err, attempt, o) {
  const status = statusOf(err)
  const backoff = () => o.random() * Math.min(o.maxDelayMs, o.baseDelayMs * 2 ** attempt)
  if (status === 429) {
    const asked = retryAfterMs(err, o.now())
    if (asked === undefined) return { retry: true, delayMs: backoff(), reason: 'rate-limited' }
    if (asked > o.maxRetryAfterMs) return { retry: false }
    return { retry: true, delayMs: asked, reason: 'retry-after' }
  }
  if (status !== undefined && status >= 500 && status <= 599) return { retry: true, delayMs: backoff(), reason: 'server-error' }
  if (status === undefined && isNetworkError(err)) return { retry: true, delayMs: backoff(), reason: 'network' }
  return { retry: false }
}

function abortError(signal) {
  if (signal.reason !== undefined) return signal.reason
  const e = new Error('The operation was aborted')
  e.name = 'AbortError'
  return e
}

/** Waits `ms`, or rejects at once when `signal` aborts. */
function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal && signal.aborted) return reject(abortError(signal))
    const onAbort = () => {
      clearTimeout(timer)
      reject(abortError(signal))
    }
    const timer = setTimeout(() => {
      if (signal) signal.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    if (signal) signal.addEventListener('abort', onAbort, { once: true })
  })
}

/**
 * Calls `fn(attempt, requestOptions)` until it succeeds, retrying what is worth retrying.
 * `requestOptions` is `{ maxRetries: 0, signal? }`, the OpenAI and Anthropic SDKs'
 * per-request options: pass it as the call's second argument so the SDK does not also retry
 * (their clients retry twice by default: 3 × 4 = 12 requests for `maxRetries: 3` otherwise).
 * Options: `maxRetries` (3), `baseDelayMs` (1000; the cost patterns article's `baseDelay` works too),
 * `maxDelayMs` (30000, the cap of one backoff), `maxRetryAfterMs` (60000: a longer
 * `retry-after` is not waited for, the error is thrown), `signal` (stops waiting at once),
 * `onRetry({ attempt, delayMs, reason, error })`, and for tests `sleep(ms, signal)`,
 * `random()`, `now()`.
 */
async function withRetry(fn, options) {
  v.fn(fn, 'fn')
  const raw = v.options(options, 'options')
  const o = {
    maxRetries: raw.maxRetries === undefined ? 3 : v.integer(raw.maxRetries, 'options.maxRetries', 0, 100),
    baseDelayMs: v.integer(raw.baseDelayMs ?? raw.baseDelay ?? 1000, 'options.baseDelayMs', 0, 3_600_000),
    maxDelayMs: raw.maxDelayMs === undefined ? 30_000 : v.integer(raw.maxDelayMs, 'options.maxDelayMs', 0, 3_600_000),
    maxRetryAfterMs: raw.maxRetryAfterMs === undefined ? 60_000 : v.integer(raw.maxRetryAfterMs, 'options.maxRetryAfterMs', 0, 86_400_000),
    signal: raw.signal,
    onRetry: raw.onRetry === undefined ? null : v.fn(raw.onRetry, 'options.onRetry'),
    sleep: raw.sleep === undefined ? sleep : v.fn(raw.sleep, 'options.sleep'),
    random: raw.random === undefined ? Math.random : v.fn(raw.random, 'options.random'),
    now: raw.now === undefined ? Date.now : v.fn(raw.now, 'options.now'),
  }
  if (o.signal !== undefined && (o.signal === null || typeof o.signal.addEventListener !== 'function')) {
    throw invalidArg('options.signal must be an AbortSignal')
  }
  for (let attempt = 0; ; attempt++) {
    if (o.signal && o.signal.aborted) throw abortError(o.signal)
    try {
      return await fn(attempt, o.signal ? { maxRetries: 0, signal: o.signal } : { maxRetries: 0 })
    } catch (error) {
      if (attempt >= o.maxRetries || (o.signal && o.signal.aborted)) throw error
      const d = decide(error, attempt, o)
      if (!d.retry) throw error
      if (o.onRetry) o.onRetry({ attempt: attempt + 1, delayMs: d.delayMs, reason: d.reason, error })
      await o.sleep(d.delayMs, o.signal)
    }
  }
}

module.exports = { withRetry, retryAfterMs: (err) => retryAfterMs(err, Date.now()) }
