// rateLimitsFrom: OpenAI's and Anthropic's rate-limit headers, retry-after in every form, and
// what a server may send wrong (ignored and named, never thrown).
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { codes, rateLimitsFrom } from '../lib/index.js'
import { feedbackFrom } from '../lib/provider-headers.js'
import { startFakeProvider, type FakeProvider } from './helpers/fake-provider.js'

const NOW = Date.UTC(2026, 11, 4, 8, 0, 0)

describe('rateLimitsFrom: OpenAI', () => {
  it('reads limit, remaining and reset of requests and tokens', () => {
    const h = {
      'x-ratelimit-limit-requests': '10000',
      'x-ratelimit-remaining-requests': '9999',
      'x-ratelimit-reset-requests': '6ms',
      'x-ratelimit-limit-tokens': '30000000',
      'x-ratelimit-remaining-tokens': '29999020',
      'x-ratelimit-reset-tokens': '1ms',
    }
    expect(rateLimitsFrom(h, { now: NOW })).toEqual({
      requests: { limit: 10_000, remaining: 9_999, resetMs: 6, resetAt: NOW + 6 },
      tokens: { limit: 30_000_000, remaining: 29_999_020, resetMs: 1, resetAt: NOW + 1 },
      ignored: [],
    })
  })

  it.each([
    ['6m0s', 360_000],
    ['20ms', 20],
    ['1.5s', 1_500],
    ['1s', 1_000],
    ['0s', 0],
    ['1h2m3s', 3_723_000],
    ['2m30.5s', 150_500],
    ['59.001s', 59_001],
    ['1m500ms', 60_500],
    ['750us', 1],
    ['90', 90_000],
  ])('reads the duration %s as %d ms', (text, ms) => {
    expect(rateLimitsFrom({ 'x-ratelimit-reset-tokens': text }, { now: NOW }).tokens).toEqual({ resetMs: ms, resetAt: NOW + ms })
  })

  it.each(['', 'soon', '-1s', '1.s', 's', '1 m', '1d', '5m 0s', 'NaN', '1e3ms'])('ignores the malformed duration %j', (text) => {
    expect(rateLimitsFrom({ 'x-ratelimit-reset-requests': text }, { now: NOW })).toEqual({ ignored: ['x-ratelimit-reset-requests'] })
  })
})

describe('rateLimitsFrom: Anthropic', () => {
  it('reads requests, tokens, input and output tokens with RFC 3339 resets', () => {
    const h = new Headers({
      'anthropic-ratelimit-requests-limit': '50',
      'anthropic-ratelimit-requests-remaining': '49',
      'anthropic-ratelimit-requests-reset': '2026-12-04T08:00:01Z',
      'anthropic-ratelimit-tokens-limit': '90000',
      'anthropic-ratelimit-tokens-remaining': '0',
      'anthropic-ratelimit-tokens-reset': '2026-12-04T08:00:30.5Z',
      'anthropic-ratelimit-input-tokens-limit': '40000',
      'anthropic-ratelimit-input-tokens-remaining': '0',
      'anthropic-ratelimit-input-tokens-reset': '2026-12-04T09:00:30+01:00',
      'anthropic-ratelimit-output-tokens-limit': '8000',
      'anthropic-ratelimit-output-tokens-remaining': '8000',
      'anthropic-ratelimit-output-tokens-reset': '2026-12-04T08:00:00Z',
    })
    expect(rateLimitsFrom(h, { now: NOW })).toEqual({
      requests: { limit: 50, remaining: 49, resetAt: NOW + 1_000, resetMs: 1_000 },
      tokens: { limit: 90_000, remaining: 0, resetAt: NOW + 30_500, resetMs: 30_500 },
      inputTokens: { limit: 40_000, remaining: 0, resetAt: NOW + 30_000, resetMs: 30_000 },
      outputTokens: { limit: 8_000, remaining: 8_000, resetAt: NOW, resetMs: 0 },
      ignored: [],
    })
  })

  it('a reset in the past is 0 ms away', () => {
    expect(rateLimitsFrom({ 'anthropic-ratelimit-requests-reset': '2026-12-04T07:59:00Z' }, { now: NOW }).requests).toEqual({ resetAt: NOW - 60_000, resetMs: 0 })
  })

  it.each(['2026-12-04', '08:00:01', '2026-12-04T08:00:01', 'Fri, 04 Dec 2026 08:00:01 GMT', '2026-13-45T99:00:00Z', '6m0s'])('ignores the reset %j (not an RFC 3339 time)', (text) => {
    expect(rateLimitsFrom({ 'anthropic-ratelimit-tokens-reset': text }, { now: NOW })).toEqual({ ignored: ['anthropic-ratelimit-tokens-reset'] })
  })
})

describe('rateLimitsFrom: retry-after', () => {
  it('reads retry-after in seconds, as an HTTP date, and retry-after-ms (which wins)', () => {
    expect(rateLimitsFrom({ 'retry-after': '20' }, { now: NOW })).toEqual({ retryAfterMs: 20_000, ignored: [] })
    expect(rateLimitsFrom({ 'retry-after': '0.5' }, { now: NOW })).toEqual({ retryAfterMs: 500, ignored: [] })
    expect(rateLimitsFrom({ 'retry-after': 'Fri, 04 Dec 2026 08:01:00 GMT' }, { now: NOW })).toEqual({ retryAfterMs: 60_000, ignored: [] })
    expect(rateLimitsFrom({ 'retry-after': 'Fri, 04 Dec 2026 07:00:00 GMT' }, { now: NOW })).toEqual({ retryAfterMs: 0, ignored: [] })
    expect(rateLimitsFrom({ 'retry-after-ms': '1500.5', 'retry-after': '2' }, { now: NOW })).toEqual({ retryAfterMs: 1_501, ignored: [] })
  })

  it('ignores a malformed one and keeps the other', () => {
    expect(rateLimitsFrom({ 'retry-after-ms': 'later', 'retry-after': '3' }, { now: NOW })).toEqual({ retryAfterMs: 3_000, ignored: ['retry-after-ms'] })
    expect(rateLimitsFrom({ 'retry-after': '-5' }, { now: NOW })).toEqual({ ignored: ['retry-after'] })
    expect(rateLimitsFrom({ 'retry-after': 'someday' }, { now: NOW })).toEqual({ ignored: ['retry-after'] })
  })
})

describe('rateLimitsFrom: input', () => {
  it('reads a Headers, a Map, or a record in any case with arrays and numbers', () => {
    const expected = { requests: { limit: 5, remaining: 4 }, ignored: [] }
    expect(rateLimitsFrom(new Headers({ 'X-RateLimit-Limit-Requests': '5', 'x-ratelimit-remaining-requests': '4' }))).toEqual(expected)
    expect(rateLimitsFrom(new Map([['x-ratelimit-limit-requests', '5'], ['x-ratelimit-remaining-requests', '4']]))).toEqual(expected)
    expect(rateLimitsFrom({ 'X-RateLimit-Limit-Requests': ['5', '6'], 'x-ratelimit-remaining-requests': 4 })).toEqual(expected)
  })

  it('absent headers: nothing, and nothing ignored', () => {
    expect(rateLimitsFrom({})).toEqual({ ignored: [] })
    expect(rateLimitsFrom(undefined)).toEqual({ ignored: [] })
    expect(rateLimitsFrom(null)).toEqual({ ignored: [] })
    expect(rateLimitsFrom({ 'content-type': 'application/json', 'x-ratelimit-limit-requests': undefined })).toEqual({ ignored: [] })
  })

  it('malformed counts are ignored one by one, the valid ones kept', () => {
    const r = rateLimitsFrom({ 'x-ratelimit-limit-tokens': '-1', 'x-ratelimit-remaining-tokens': '12.5', 'x-ratelimit-limit-requests': ' 60 ', 'anthropic-ratelimit-requests-remaining': 'lots' })
    expect(r).toEqual({ requests: { limit: 60 }, ignored: ['anthropic-ratelimit-requests-remaining', 'x-ratelimit-limit-tokens', 'x-ratelimit-remaining-tokens'] })
  })

  it('bad arguments are typed errors', () => {
    expect(() => rateLimitsFrom('x-ratelimit-limit-requests: 5' as any)).toThrow(expect.objectContaining({ code: codes.INVALID_ARG }))
    expect(() => rateLimitsFrom({}, { now: -1 })).toThrow(expect.objectContaining({ code: codes.OUT_OF_RANGE }))
    expect(() => rateLimitsFrom({}, { nwo: 1 } as any)).toThrow(expect.objectContaining({ code: codes.UNKNOWN_OPTION }))
  })
})

describe('rateLimitsFrom on a real 429', () => {
  let fake: FakeProvider
  beforeAll(async () => {
    fake = await startFakeProvider()
  })
  afterAll(() => fake.close())

  it("reads the headers of the OpenAI SDK's APIError", async () => {
    const client = new OpenAI({ apiKey: 'test', baseURL: `http://127.0.0.1:${fake.port}/v1`, maxRetries: 0 })
    fake.rateLimit(1, { 'retry-after': '7', 'x-ratelimit-limit-tokens': '1000', 'x-ratelimit-remaining-tokens': '0', 'x-ratelimit-reset-tokens': '6m0s' })
    const err: any = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }).catch((e) => e)
    expect(err.status).toBe(429)
    expect(rateLimitsFrom(err.headers, { now: NOW })).toEqual({ tokens: { limit: 1_000, remaining: 0, resetMs: 360_000, resetAt: NOW + 360_000 }, retryAfterMs: 7_000, ignored: [] })
  })
})

describe('feedbackFrom: what the SDK wrappers read of each response', () => {
  it('a success is read for its remaining-headers only: whole ones leave the rest unparsed', () => {
    const h = new Headers({ 'x-ratelimit-remaining-requests': '9', 'x-ratelimit-remaining-tokens': '100', 'x-ratelimit-reset-tokens': 'soon' })
    // The malformed reset is not even read while something remains.
    expect(feedbackFrom(h, 200, NOW, 'openai')).toEqual({ until: 0, ignored: 0 })
    expect(feedbackFrom(new Headers(), 200, NOW, 'openai')).toEqual({ until: 0, ignored: 0 })
    expect(feedbackFrom(undefined, 200, NOW, 'openai')).toEqual({ until: 0, ignored: 0 })
  })

  it('a remaining of 0 with its reset: exhausted until then, the whole set read', () => {
    const h = new Headers({ 'x-ratelimit-remaining-requests': '9', 'x-ratelimit-remaining-tokens': ' 0 ', 'x-ratelimit-reset-tokens': '6m0s', 'x-ratelimit-reset-requests': 'soon' })
    expect(feedbackFrom(h, 200, NOW, 'openai')).toEqual({ until: NOW + 360_000, ignored: 1 })
    const a = { 'anthropic-ratelimit-output-tokens-remaining': '0', 'anthropic-ratelimit-output-tokens-reset': new Date(NOW + 5_000).toISOString() }
    expect(feedbackFrom(a, 200, NOW, 'anthropic')).toEqual({ until: NOW + 5_000, ignored: 0 })
    // The other provider's names are not looked at on a success.
    expect(feedbackFrom(a, 200, NOW, 'openai')).toEqual({ until: 0, ignored: 0 })
  })

  it('a malformed remaining is counted; a 429 is always read whole', () => {
    expect(feedbackFrom({ 'x-ratelimit-remaining-tokens': 'lots' }, 200, NOW, 'openai')).toEqual({ until: 0, ignored: 1 })
    expect(feedbackFrom({ 'retry-after': '3' }, 429, NOW, 'openai')).toEqual({ until: NOW + 3_000, ignored: 0 })
    expect(feedbackFrom({}, 429, NOW, 'anthropic')).toEqual({ until: NOW + 1_000, ignored: 0 })
  })
})
