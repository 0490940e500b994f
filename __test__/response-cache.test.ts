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

forEachStore('ResponseCache', (c) => {
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
