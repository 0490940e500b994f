import { createHash } from 'node:crypto'
import Redis from 'ioredis'
import { afterAll, describe, expect, it } from 'vitest'
import { ResponseCache, requestKey } from '../lib/index.js'
import { Clock, forEachStore, redisUrl } from './helpers/stores.js'

const messages = [{ role: 'user', content: 'Hello' }]
const result = { message: { role: 'assistant', content: 'Hi! How can I help?' }, usage: { promptTokens: 5, completionTokens: 7, totalTokens: 12 } }

describe('requestKey', () => {
  it('is SHA-256 of the canonical JSON of {model, messages}', () => {
    const canonical = '{"messages":[{"content":"Hello","role":"user"}],"model":"gpt-4o"}'
    expect(requestKey('gpt-4o', messages)).toBe(createHash('sha256').update(canonical).digest('hex'))
  })

  it('does not depend on property order, and drops undefined properties like JSON does', () => {
    const a = requestKey('gpt-4o', [{ role: 'user', content: 'Hello' }])
    expect(requestKey('gpt-4o', [{ content: 'Hello', role: 'user' }])).toBe(a)
    expect(requestKey('gpt-4o', [{ role: 'user', content: 'Hello', name: undefined }])).toBe(a)
  })

  it('differs by model, content, order of messages and numbers', () => {
    const keys = new Set([
      requestKey('gpt-4o', messages),
      requestKey('gpt-4o-mini', messages),
      requestKey('gpt-4o', [{ role: 'user', content: 'Hello!' }]),
      requestKey('gpt-4o', [...messages, { role: 'assistant', content: 'x' }]),
      requestKey('gpt-4o', [{ role: 'assistant', content: 'x' }, ...messages]),
      requestKey('gpt-4o', [{ role: 'user', content: [{ type: 'text', n: 1 }] }]),
      requestKey('gpt-4o', [{ role: 'user', content: [{ type: 'text', n: 1.5 }] }]),
    ])
    expect(keys.size).toBe(7)
  })

  it('handles unicode the same way in every process', () => {
    const k = requestKey('claude-3-5-sonnet-latest', [{ role: 'user', content: 'héllo 😀' }])
    const canonical = '{"messages":[{"content":"héllo 😀","role":"user"}],"model":"claude-3-5-sonnet-latest"}'
    expect(k).toBe(createHash('sha256').update(canonical, 'utf8').digest('hex'))
  })
})

describe('requestKey keeps the keys of the RFC 8785 library it replaced (entries cached before carry over)', () => {
  it('digests pinned from the previous implementation', () => {
    expect(requestKey('gpt-4o', [{ role: 'user', content: 'Hello' }])).toBe('89457de9d9cf8c3b993c0047b26f5f902c876d8c73c54cba68a67ddf0d0a5ae9')
    expect(
      requestKey('gpt-4o', [
        { role: 'system', content: 'tab\tquote"back\\slash\u0001 é 你 😀 \u2028' },
        { role: 'user', content: [{ type: 'text', text: 'x', n: 1.5e-7, m: -0, big: 1e21, f: 0.1 }] },
      ]),
    ).toBe('8a1587539afcd3e5c0c1c38cdbae30bb397ebdcf883214b74ed1727879d35d50')
    expect(requestKey('gpt-4o', [{ role: 'user', content: 'n', meta: { z: 1, a: [true, null, 9007199254740993], é: 2, E: 3 } }])).toBe(
      'ff2e6b95ff09959f9c5d5b7d541a322cd2c49ea098b2b2f8946d100c571d96d8',
    )
  })
})

describe('requestKey with request parameters (issue 19, item 3)', () => {
  const params = [
    { temperature: 0 },
    { temperature: 1 },
    { top_p: 0.5 },
    { tools: [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object' } } }] },
    { tool_choice: 'required' },
    { response_format: { type: 'json_object' } },
    { seed: 7 },
    { max_tokens: 10 },
    { max_completion_tokens: 10 },
  ]

  it('every parameter that changes an answer changes the key', () => {
    const keys = new Set([requestKey('gpt-4o', messages), ...params.map((p) => requestKey('gpt-4o', messages, p))])
    expect(keys.size).toBe(params.length + 1)
  })

  it('is SHA-256 of the canonical request body; no params (or {}) is the key of {model, messages}', () => {
    const canonical = '{"messages":[{"content":"Hello","role":"user"}],"model":"gpt-4o","temperature":0}'
    expect(requestKey('gpt-4o', messages, { temperature: 0 })).toBe(createHash('sha256').update(canonical).digest('hex'))
    expect(requestKey('gpt-4o', messages, {})).toBe(requestKey('gpt-4o', messages))
    expect(requestKey('gpt-4o', messages, { temperature: undefined })).toBe(requestKey('gpt-4o', messages))
  })

  it('takes the whole request body, whose model and messages must match', () => {
    const body = { model: 'gpt-4o', messages, temperature: 0 }
    expect(requestKey('gpt-4o', messages, body)).toBe(requestKey('gpt-4o', messages, { temperature: 0 }))
    expect(() => requestKey('gpt-4o-mini', messages, body)).toThrow(expect.objectContaining({ code: 'ERR_TOLLGATE_INVALID_ARG' }))
    expect(() => requestKey('gpt-4o', [...messages], body)).toThrow(expect.objectContaining({ code: 'ERR_TOLLGATE_INVALID_ARG' }))
    expect(() => requestKey('gpt-4o', messages, [1] as any)).toThrow(expect.objectContaining({ code: 'ERR_TOLLGATE_INVALID_ARG' }))
    expect(() => requestKey('gpt-4o', messages, { temperature: NaN })).toThrow(expect.objectContaining({ code: 'ERR_TOLLGATE_INVALID_ARG' }))
  })
})

forEachStore('ResponseCache', (c) => {
  it('an answer cached for one temperature, tool set or response format is not served for another', async () => {
    const cache = new ResponseCache(c.store(new Clock()), { prefix: c.prefix('cache') })
    await cache.set('gpt-4o', messages, 'plain', { temperature: 0 })
    expect(await cache.get('gpt-4o', messages, { temperature: 0 })).toBe('plain')
    expect(await cache.get('gpt-4o', messages, { temperature: 0.7 })).toBeNull()
    expect(await cache.get('gpt-4o', messages, { temperature: 0, tools: [{ type: 'function', function: { name: 'f' } }] })).toBeNull()
    expect(await cache.get('gpt-4o', messages, { temperature: 0, response_format: { type: 'json_object' } })).toBeNull()
    expect(await cache.get('gpt-4o', messages)).toBeNull()
    expect(await cache.invalidate('gpt-4o', messages, { temperature: 0 })).toBe(true)
    expect(await cache.get('gpt-4o', messages, { temperature: 0 })).toBeNull()
  })

  it('keyFn receives the params', async () => {
    const seen: unknown[] = []
    const cache = new ResponseCache(c.store(new Clock()), {
      prefix: c.prefix('cache'),
      keyFn: (model, msgs, params) => {
        seen.push(params)
        return `${model}:${params?.temperature ?? 'default'}`
      },
    })
    await cache.set('m', messages, 1, { temperature: 0 })
    expect(await cache.get('m', messages, { temperature: 0 })).toBe(1)
    expect(await cache.get('m', messages)).toBeNull()
    expect(seen).toEqual([{ temperature: 0 }, { temperature: 0 }, undefined])
  })

  it('misses, then hits after set, with the same request in any property order', async () => {
    const cache = new ResponseCache(c.store(new Clock()), { ttl: 3600, prefix: c.prefix('cache') })
    expect(await cache.get('gpt-4o', messages)).toBeNull()
    await cache.set('gpt-4o', messages, result)
    expect(await cache.get('gpt-4o', messages)).toEqual(result)
    expect(await cache.get('gpt-4o', [{ content: 'Hello', role: 'user' }])).toEqual(result)
    expect(await cache.get('gpt-4o-mini', messages)).toBeNull()
  })

  it('expires after ttl and is not extended by hits', async () => {
    const clock = new Clock()
    const cache = new ResponseCache(c.store(clock), { ttl: 60, prefix: c.prefix('cache') })
    await cache.set('m', messages, result)
    clock.advance(59_000)
    expect(await cache.get('m', messages)).toEqual(result)
    clock.advance(1_000)
    expect(await cache.get('m', messages)).toBeNull()
  })

  it('set replaces the value and restarts the ttl', async () => {
    const clock = new Clock()
    const cache = new ResponseCache(c.store(clock), { ttl: 10, prefix: c.prefix('cache') })
    await cache.set('m', messages, 'first')
    clock.advance(8_000)
    await cache.set('m', messages, 'second')
    clock.advance(8_000)
    expect(await cache.get('m', messages)).toBe('second')
  })

  it('invalidate removes an entry and says whether there was one', async () => {
    const cache = new ResponseCache(c.store(new Clock()), { prefix: c.prefix('cache') })
    await cache.set('m', messages, result)
    expect(await cache.invalidate('m', messages)).toBe(true)
    expect(await cache.get('m', messages)).toBeNull()
    expect(await cache.invalidate('m', messages)).toBe(false)
  })

  it('keyFn overrides the key (tekimax: cache by last user message)', async () => {
    const prefix = c.prefix('myapp:ai')
    const cache = new ResponseCache(c.store(new Clock()), {
      prefix,
      keyFn: (model, msgs) => `${model}:${msgs.filter((m) => m.role === 'user').pop()?.content?.slice(0, 100)}`,
    })
    expect(cache.keyFor('gpt-4o', messages)).toBe(`${prefix}gpt-4o:Hello`)
    await cache.set('gpt-4o', [{ role: 'system', content: 'A' }, ...messages], result)
    expect(await cache.get('gpt-4o', [{ role: 'system', content: 'B' }, ...messages])).toEqual(result)
  })

  it('stores any JSON value, and returns a fresh copy each time', async () => {
    const cache = new ResponseCache(c.store(new Clock()), { prefix: c.prefix('cache') })
    const value = { a: [1, 2.5, 'x', null, true], nested: { deep: { deeper: 'é😀' } } }
    await cache.set('m', messages, value)
    const got = (await cache.get<{ a: number[] }>('m', messages))!
    expect(got).toEqual(value)
    got.a.push(99)
    expect(await cache.get('m', messages)).toEqual(value)
  })
})

describe('ResponseCache on Redis: corrupt entries', () => {
  const redis = new Redis(redisUrl())
  afterAll(() => redis.quit())

  it('a value that is not JSON is a miss and is evicted', async () => {
    const prefix = `t:corrupt:${Date.now()}:`
    const cache = new ResponseCache(redisUrl(), { prefix })
    const key = cache.keyFor('gpt-4o', messages)
    await redis.hset(key, 'v', 'not json', 'x', String(Date.now() + 60_000))
    expect(await cache.get('gpt-4o', messages)).toBeNull()
    await expect.poll(() => redis.exists(key)).toBe(0)
  })

  it('a key of another type (an old tekimax string entry) is a miss and is evicted', async () => {
    const prefix = `t:corrupt2:${Date.now()}:`
    const cache = new ResponseCache(redisUrl(), { prefix })
    const key = cache.keyFor('gpt-4o', messages)
    await redis.set(key, '{"message":"stale"}')
    expect(await cache.get('gpt-4o', messages)).toBeNull()
    expect(await redis.exists(key)).toBe(0)
    await cache.set('gpt-4o', messages, result)
    expect(await cache.get('gpt-4o', messages)).toEqual(result)
  })

  it('entries carry a real Redis TTL, so nothing is left behind', async () => {
    const cache = new ResponseCache(redisUrl(), { ttl: 120, prefix: `t:ttl:${Date.now()}:` })
    await cache.set('gpt-4o', messages, result)
    const ttl = await redis.pttl(cache.keyFor('gpt-4o', messages))
    expect(ttl).toBeGreaterThan(119_000)
    expect(ttl).toBeLessThanOrEqual(120_000)
  })
})
