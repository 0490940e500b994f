import { describe, expect, it } from 'vitest'
import { SessionStore } from '../lib/index.js'
import { Clock, forEachStore } from './helpers/stores.js'

const session = {
  messages: [
    { role: 'user', content: 'Hello' },
    { role: 'assistant', content: 'Hi! How can I help?' },
  ],
  metadata: { model: 'gpt-4o', startedAt: 1_700_000_000_000, provider: 'openai' },
}

forEachStore('SessionStore', (c) => {
  const make = (clock: Clock, opts: { ttl?: number; maxBytes?: number } = {}) =>
    new SessionStore(c.store(clock), { prefix: c.prefix('sess'), ...opts })

  it("saves and loads tekimax's example", async () => {
    const s = make(new Clock(), { ttl: 1800 })
    expect(await s.load('user-123')).toBeNull()
    await s.save('user-123', session)
    expect(await s.load('user-123')).toEqual(session)
  })

  it('stores data of any JSON shape', async () => {
    const s = make(new Clock())
    for (const data of ['text', 42, [1, 2], { messages: 'not an array' }, { a: null }, null]) {
      await s.save('any', data)
      expect(await s.load('any')).toEqual(data)
    }
  })

  it('expires after ttl; load does not extend it, touch does', async () => {
    const clock = new Clock()
    const s = make(clock, { ttl: 30 })
    await s.save('u', session)
    clock.advance(20_000)
    expect(await s.load('u')).toEqual(session)
    expect(await s.touch('u')).toBe(true)
    clock.advance(29_999)
    expect(await s.load('u')).toEqual(session)
    clock.advance(1)
    expect(await s.load('u')).toBeNull()
    expect(await s.touch('u')).toBe(false)
    expect(await s.load('u')).toBeNull() // touch never creates a session
  })

  it('destroy ends the session', async () => {
    const s = make(new Clock())
    await s.save('u', session)
    expect(await s.destroy('u')).toBe(true)
    expect(await s.load('u')).toBeNull()
    expect(await s.destroy('u')).toBe(false)
  })

  it('append adds messages in order and keeps the rest of the session', async () => {
    const s = make(new Clock())
    await s.save('u', session)
    await s.append('u', { role: 'user', content: 'Tell me a joke' })
    await s.append('u', { role: 'assistant', content: 'Why…' }, { role: 'user', content: 'ha' })
    const loaded = (await s.load<{ metadata: unknown; messages: { content: string }[] }>('u'))!
    expect(loaded.metadata).toEqual(session.metadata)
    expect(loaded.messages.map((m: { content: string }) => m.content)).toEqual([
      'Hello',
      'Hi! How can I help?',
      'Tell me a joke',
      'Why…',
      'ha',
    ])
  })

  it('append creates a session when there is none, and restarts the ttl', async () => {
    const clock = new Clock()
    const s = make(clock, { ttl: 10 })
    await s.append('new', { role: 'user', content: 'first' })
    expect(await s.load('new')).toEqual({ messages: [{ role: 'user', content: 'first' }] })
    clock.advance(9_000)
    await s.append('new', { role: 'user', content: 'second' })
    clock.advance(9_000)
    expect((await s.load<{ messages: unknown[] }>('new'))!.messages).toHaveLength(2)
  })

  it('append is atomic under concurrency: no message is lost', async () => {
    const s = make(new Clock())
    await s.save('c', { messages: [] })
    await Promise.all(Array.from({ length: 100 }, (_, i) => s.append('c', { i })))
    const loaded = (await s.load<{ messages: { i: number }[] }>('c'))!
    expect(loaded.messages.map((m: { i: number }) => m.i).sort((a: number, b: number) => a - b)).toEqual(
      Array.from({ length: 100 }, (_, i) => i),
    )
  })

  it('append refuses a session that is not an object with a messages array', async () => {
    const s = make(new Clock())
    await s.save('raw', { messages: 'text' })
    await expect(s.append('raw', { role: 'user' })).rejects.toMatchObject({ name: 'TypeError', code: 'ERR_TOLLGATE_NOT_A_MESSAGE_LIST' })
    expect(await s.load('raw')).toEqual({ messages: 'text' })
  })

  it('maxBytes refuses oversize saves and appends and keeps the stored session intact', async () => {
    const s = make(new Clock(), { maxBytes: 300 })
    await s.save('cap', session)
    const before = await s.load('cap')
    const big = { role: 'user', content: 'x'.repeat(400) }
    await expect(s.save('cap', { messages: [big] })).rejects.toMatchObject({ name: 'RangeError', code: 'ERR_TOLLGATE_TOO_LARGE' })
    await expect(s.append('cap', big)).rejects.toMatchObject({ name: 'RangeError', code: 'ERR_TOLLGATE_TOO_LARGE' })
    expect(await s.load('cap')).toEqual(before)
    // Appends that fit still work, up to the cap exactly.
    const size = await s.append('cap', { role: 'user', content: 'ok' })
    expect(size).toBeLessThanOrEqual(300)
  })

  it('append reports the stored size in bytes (UTF-8)', async () => {
    const s = make(new Clock())
    const size = await s.append('bytes', 'é')
    // {"messages":["é"]} is stored as head "{}" (2 bytes) + array '["é"]' (6 bytes: é is 2).
    expect(size).toBe(2 + 6)
  })
})
