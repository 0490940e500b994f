// withRetry against the errors the real OpenAI and Anthropic SDKs throw. Waits are recorded by
// an injected `sleep`, so nothing sleeps; the abort test uses the real timer.
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import { describe, expect, it } from 'vitest'
import { codes, withRetry } from '../lib/index.js'

function recorder() {
  const waits: number[] = []
  return { waits, sleep: async (ms: number) => void waits.push(ms) }
}

/** A function that throws `errors` in turn, then returns 'ok'. */
function failing(...errors: unknown[]) {
  let calls = 0
  const fn = async () => {
    calls++
    if (errors.length) throw errors.shift()
    return 'ok'
  }
  return { fn, calls: () => calls }
}

const openaiError = (status: number, headers: Record<string, string> = {}) =>
  OpenAI.APIError.generate(status, { error: { message: `status ${status}` } }, `status ${status}`, new Headers(headers))
const anthropicError = (status: number, headers: Record<string, string> = {}) =>
  Anthropic.APIError.generate(status, { type: 'error', error: { type: 'x', message: 'x' } }, 'x', new Headers(headers))

describe('withRetry', () => {
  it('429 waits exactly what retry-after-ms says (OpenAI SDK error)', async () => {
    const r = recorder()
    const f = failing(openaiError(429, { 'retry-after-ms': '1500', 'retry-after': '9' }))
    expect(await withRetry(f.fn, { sleep: r.sleep })).toBe('ok')
    expect(r.waits).toEqual([1500])
    expect(f.calls()).toBe(2)
  })

  it('429 waits retry-after seconds, or until an HTTP date (Anthropic SDK error)', async () => {
    const r = recorder()
    const now = Date.UTC(2026, 10, 25, 12, 0, 0)
    const date = new Date(now + 7_000).toUTCString()
    const f = failing(anthropicError(429, { 'retry-after': '3' }), anthropicError(429, { 'retry-after': date }))
    expect(await withRetry(f.fn, { sleep: r.sleep, now: () => now })).toBe('ok')
    expect(r.waits).toEqual([3_000, 7_000])
  })

  it('429 without a header backs off; a retry-after over maxRetryAfterMs is thrown, not waited', async () => {
    const r = recorder()
    expect(await withRetry(failing(openaiError(429)).fn, { sleep: r.sleep, random: () => 0.5, baseDelayMs: 100 })).toBe('ok')
    expect(r.waits).toEqual([50])
    const long = openaiError(429, { 'retry-after': '600' })
    await expect(withRetry(failing(long).fn, { sleep: r.sleep })).rejects.toBe(long)
  })

  it('5xx and overloaded back off exponentially with full jitter, capped at maxDelayMs', async () => {
    const r = recorder()
    const f = failing(openaiError(500), anthropicError(529), openaiError(503), openaiError(502))
    expect(await withRetry(f.fn, { sleep: r.sleep, random: () => 0.999, baseDelayMs: 1_000, maxDelayMs: 5_000, maxRetries: 4 })).toBe('ok')
    expect(r.waits.map(Math.round)).toEqual([999, 1998, 3996, 4995])
    const low = recorder()
    await withRetry(failing(openaiError(500), openaiError(500)).fn, { sleep: low.sleep, random: () => 0 })
    expect(low.waits).toEqual([0, 0])
  })

  it('jitter stays within [0, min(maxDelayMs, base * 2^attempt))', async () => {
    const r = recorder()
    const errors = Array.from({ length: 6 }, () => openaiError(500))
    await withRetry(failing(...errors).fn, { sleep: r.sleep, maxRetries: 6, baseDelayMs: 200, maxDelayMs: 3_000 })
    r.waits.forEach((w, i) => {
      expect(w).toBeGreaterThanOrEqual(0)
      expect(w).toBeLessThan(Math.min(3_000, 200 * 2 ** i))
    })
  })

  it('network errors are retried: SDK connection errors, Node codes, fetch failures', async () => {
    const r = recorder()
    const reset = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })
    const fetchFailed = new TypeError('fetch failed', { cause: Object.assign(new Error('connect'), { code: 'ECONNREFUSED' }) })
    const f = failing(new OpenAI.APIConnectionError({ message: 'down' }), reset, fetchFailed)
    expect(await withRetry(f.fn, { sleep: r.sleep, random: () => 0 })).toBe('ok')
    expect(f.calls()).toBe(4)
  })

  it('other 4xx are thrown at once', async () => {
    for (const status of [400, 401, 403, 404, 409, 422]) {
      const e = openaiError(status)
      const f = failing(e)
      await expect(withRetry(f.fn, { sleep: recorder().sleep })).rejects.toBe(e)
      expect(f.calls()).toBe(1)
    }
    const plain = new Error('a bug')
    await expect(withRetry(failing(plain).fn)).rejects.toBe(plain)
  })

  it('gives up after maxRetries with the last error', async () => {
    const errors = [openaiError(500), openaiError(502), openaiError(503)]
    const last = errors[2]
    const f = failing(...errors, openaiError(500))
    await expect(withRetry(f.fn, { maxRetries: 2, sleep: recorder().sleep })).rejects.toBe(last)
    expect(f.calls()).toBe(3)
  })

  it('an AbortSignal stops the wait at once', async () => {
    const controller = new AbortController()
    const f = failing(openaiError(429, { 'retry-after': '30' }))
    const t0 = Date.now()
    setTimeout(() => controller.abort(new Error('user left')), 20)
    await expect(withRetry(f.fn, { signal: controller.signal })).rejects.toThrow('user left')
    expect(Date.now() - t0).toBeLessThan(1_000)
    await expect(withRetry(async () => 'never', { signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'AbortError' })
  })

  it('reports each retry and passes the attempt number', async () => {
    const seen: unknown[] = []
    const attempts: number[] = []
    await withRetry(
      async (attempt) => {
        attempts.push(attempt)
        if (attempt < 2) throw openaiError(503)
        return 'ok'
      },
      { sleep: recorder().sleep, random: () => 0, onRetry: ({ attempt, reason }) => seen.push([attempt, reason]) },
    )
    expect(attempts).toEqual([0, 1, 2])
    expect(seen).toEqual([[1, 'server-error'], [2, 'server-error']])
  })

  it('validates its arguments', async () => {
    await expect(withRetry(5 as any)).rejects.toMatchObject({ code: codes.INVALID_ARG })
    await expect(withRetry(async () => 1, { maxRetries: -1 })).rejects.toMatchObject({ code: codes.OUT_OF_RANGE })
    await expect(withRetry(async () => 1, { signal: {} as any })).rejects.toMatchObject({ code: codes.INVALID_ARG })
  })
})
