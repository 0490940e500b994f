// rate-budget's own suite, its PHP port's checks and further cases checked against rate-budget's code,
// with their numbers, run against every store Quota takes: the MemoryStore, a user's
// { mutate(scope, fn) } store (in memory, and JSON-serialising) and the RedisStore.
import Redis from 'ioredis'
import { afterAll, describe, expect, it } from 'vitest'
import { clusterUrls, redisUrl } from './helpers/stores.js'
import { BUFFER_MS, MemoryStore, Quota, RedisStore, QuotaManager, THRESHOLD_PCT, WINDOW_MS, cooldownMs, dailyCap, tokenWaitMs } from '../lib/index.js'

type State = { keys: Record<string, any> }
// Results are unions (ok | blocked); these tests read fields of the branch they expect.
const newQuota = (options?: any): any => new Quota(options?.store instanceof InspectableRedisStore ? { prefix: options.store.prefix, ...options } : options)
interface InspectableStore {
  get(scope: string): State | undefined
}

/** rate-budget's MemoryStore contract, written as a user would: state kept as a JS object. */
class ObjectStore implements InspectableStore {
  map = new Map<string, State>()
  mutate<T>(scope: string, fn: (s: State) => T): T {
    const state = this.map.get(scope) ?? { keys: {} }
    const out = fn(state)
    this.map.set(scope, state)
    return out
  }
  get(scope: string) {
    return this.map.get(scope)
  }
}

/** An async adapter that stores JSON text, like one over a database. */
class JsonStore implements InspectableStore {
  data = new Map<string, string>()
  async mutate<T>(scope: string, fn: (s: State) => T): Promise<T> {
    await new Promise((r) => setImmediate(r))
    const state = JSON.parse(this.data.get(scope) ?? '{"keys":{}}')
    const out = fn(state)
    this.data.set(scope, JSON.stringify(state))
    return out
  }
  get(scope: string) {
    const text = this.data.get(scope)
    return text === undefined ? undefined : JSON.parse(text)
  }
}

const redis = new Redis(redisUrl(), { lazyConnect: true })
afterAll(() => redis.disconnect())
/** A RedisStore whose scopes can be read back in rate-budget's shape, for these tests. */
class InspectableRedisStore extends RedisStore {
  prefix = `t:quota:${Math.random().toString(36).slice(2, 10)}:`
  constructor() {
    super(redisUrl())
    opened.push(this)
  }
  async get(scope: string): Promise<State | undefined> {
    // quota.lua keeps each key's counters, hits and holds in hashes; read them back in
    // rate-budget's shape (hits still in the window in order, holds in the order made).
    // The records' layouts are quota.lua's encode_meta / encode_hit / encode_hold.
    const script = `
      local function opt(x) if x ~= x then return nil end return x end
      local function str_at(raw, pos, len) if len < 0 then return nil, pos end return string.sub(raw, pos, pos + len - 1), pos + len end
      local metas = redis.call('HGETALL', KEYS[1])
      if #metas == 0 then return false end
      local out = {}
      for i = 1, #metas, 2 do
        local raw = metas[i + 1]
        local n, u, dt, la, f, x, fa, ft, fr, ba, ep, tot, req, made, o, e, dlen, llen, pos = struct.unpack('<ddddddddddddddddi4i4', raw)
        local day, li
        day, pos = str_at(raw, pos, dlen)
        li = str_at(raw, pos, llen)
        local hits = {}
        for seq = f, x - 1 do
          local rawh = redis.call('HGET', KEYS[2], n .. ':' .. seq)
          if rawh then
            local a, t, hu, z, r, ilen, hpos = struct.unpack('<dddddi4', rawh)
            z, r = opt(z), opt(r)
            if not r and (z == nil or ep <= z) then hits[#hits + 1] = {id = str_at(rawh, hpos, ilen), at = a, tokens = t} end
          end
        end
        local holds = {}
        local all = redis.call('HGETALL', KEYS[2])
        local prefix = 'o' .. n .. ':'
        for j = 1, #all, 2 do
          if string.sub(all[j], 1, #prefix) == prefix then
            local rawo = all[j + 1]
            local t, a, pa, p, hs, hu, odlen, plen, opos = struct.unpack('<ddddddi4i4', rawo)
            local d, pi
            d, opos = str_at(rawo, opos, odlen)
            pi = str_at(rawo, opos, plen)
            holds[#holds + 1] = {id = string.sub(all[j], #prefix + 1), tokens = t, at = a, day = d, prevAt = opt(pa), prevId = pi, place = p}
          end
        end
        table.sort(holds, function(a, b) return a.place < b.place end)
        out[#out + 1] = {name = metas[i], day = day, used = u, lastAt = opt(la), lastId = li, hits = hits, holds = holds}
      end
      return cjson.encode(out)`
    const base = `${this.prefix}{q${scope}}`
    const text = (await redis.eval(script, 2, `${base}:k`, `${base}:h`)) as string | null
    if (text === null) return undefined
    const keys: Record<string, any> = {}
    for (const k of JSON.parse(text)) {
      const arr = (x: unknown) => (Array.isArray(x) ? x : [])
      const holds = arr(k.holds).map(({ place, ...h }: any) => [h.id, { ...h, scope, key: k.name }])
      const state: any = { day: k.day, used: k.used, hits: arr(k.hits), holds: Object.fromEntries(holds) }
      if (k.lastAt !== undefined) state.lastAt = k.lastAt
      if (k.lastId !== undefined) state.lastId = k.lastId
      keys[k.name] = state
    }
    return { keys }
  }
}
const opened: RedisStore[] = []
afterAll(async () => {
  await Promise.all(opened.map((s) => s.close()))
})

const stores: Array<[string, () => any]> = [
  ['MemoryStore', () => new MemoryStore()],
  ['mutate store', () => new ObjectStore()],
  ['JSON mutate store', () => new JsonStore()],
  ['RedisStore', () => new InspectableRedisStore()],
]

async function stateOf(store: any, scope: string): Promise<State> {
  return (await store.get(scope)) as State
}

const keys = () => [
  { id: 'primary', rpm: 15, tpm: 1_000, rpd: 10, priority: 10 },
  { id: 'backup', rpm: 15, tpm: 1_000, rpd: 10, priority: 1 },
]
const singleKey = () => ({ id: 'solo', rpm: 15, tpm: 1_000, rpd: 10 })

describe('helpers', () => {
  it('cooldownMs follows rpm spacing with buffer', () => {
    expect(cooldownMs(15)).toBe(5_000)
    expect([cooldownMs(0), cooldownMs(-5), cooldownMs(2.5), cooldownMs(7), cooldownMs(15, 0), cooldownMs(15, null as any)]).toEqual([61_000, 61_000, 31_000, 9_572, 4_000, 4_000])
    expect([cooldownMs(15, undefined, 30_000), cooldownMs(15, -3), cooldownMs(NaN), cooldownMs(15, 500.5), cooldownMs(15, 1000, 0)]).toEqual([3_000, 4_000, 61_000, 4_500, 1_000])
  })

  it('dailyCap applies the rpd threshold, with rate-budget floating point', () => {
    expect(dailyCap(500, 90)).toBe(450)
    expect(dailyCap(500, 0)).toBe(0)
    expect([dailyCap(500), dailyCap(0), dailyCap(10, 33.3), dailyCap(500, 150), dailyCap(500, -1), dailyCap(500, NaN), dailyCap(500, null as any), dailyCap(2.9, 100)]).toEqual([500, 1, 4, 500, 0, 500, 500, 2])
    expect([dailyCap(100, 7), dailyCap(25, 28), dailyCap(50, 56), dailyCap(100, 55), dailyCap(75, 68)]).toEqual([8, 8, 29, 56, 52])
  })

  it('tokenWaitMs uses a sliding 60-second window', () => {
    expect(tokenWaitMs({ used: 900, tokens: 200, limit: 1_000, now: 120_000, hits: [{ id: 'old', at: 90_000, tokens: 900 }] })).toBe(31_000)
    expect(tokenWaitMs({ used: 0, tokens: 1_001, limit: 1_000, now: 0 })).toBeNull()
    expect(tokenWaitMs({ used: 800, tokens: 200, limit: 1_000, now: 0 })).toBe(0)
    expect(tokenWaitMs({ used: 900, tokens: 200, limit: 1_000, hits: [], now: 0 })).toBe(61_000)
    expect(tokenWaitMs({ used: 900, tokens: 200, limit: 1_000, hits: [{ at: 90_000, tokens: 900 }], now: 200_000 })).toBe(0)
    expect(tokenWaitMs({ used: 900, tokens: 200, limit: 1_000, hits: [{ at: 100_000, tokens: 50 }, { at: 90_000, tokens: 60 }], now: 120_000 })).toBe(41_000)
    expect(tokenWaitMs({ used: 900, tokens: 200, limit: 1_000, hits: [{ at: 90_000, tokens: 900 }], now: 120_000, windowMs: 30_000, bufferMs: 0 })).toBe(0)
    const now = 1_700_000_000_000
    expect(tokenWaitMs({ used: 90, tokens: 20, limit: 100, hits: [{ id: 'h1', at: now - 1_000, tokens: 90 }], now })).toBe(60_000)
    expect(tokenWaitMs({ used: 0, tokens: 101, limit: 100, hits: [], now })).toBeNull()
  })

  it('exports rate-budget names', () => {
    expect([WINDOW_MS, BUFFER_MS, THRESHOLD_PCT]).toEqual([60_000, 1_000, 100])
    expect(QuotaManager).toBe(Quota)
  })
})

describe.each(stores)('Quota on a %s', (_name, makeStore) => {
  it('reserve picks the highest priority key when all limits pass', async () => {
    const ks = keys()
    const quota = newQuota({ store: makeStore(), now: () => 0, id: () => 'hold-1' })
    const reserved = await quota.reserve('tenant-a', ks, { tokens: 100 })
    expect(reserved.ok).toBe(true)
    expect(reserved.key).toBe(ks[0]) // the very object passed in
    expect(reserved.hold).toStrictEqual({ id: 'hold-1', scope: 'tenant-a', key: 'primary', tokens: 100, at: 0, day: '1970-01-01', prevAt: undefined, prevId: undefined })
    expect(reserved.checks).toHaveLength(2)
    expect(reserved.checks[0]).toStrictEqual({
      key: 'primary', ok: true, reason: undefined, waitMs: 0, priority: 10, rpmMs: 0, tpmMs: 0, tokenUsed: 0, tokenPct: 0, dailyUsed: 0, dailyCap: 10, dailyLeft: 10, dailyPct: 0,
    })
    expect(Object.keys(reserved)).toEqual(['ok', 'key', 'tokens', 'waitMs', 'checks', 'hold'])
  })

  it('reserve accepts a single key object', async () => {
    const quota = newQuota({ store: makeStore(), now: () => 0, id: () => 'hold-1' })
    const reserved = await quota.reserve('tenant-a', singleKey(), { tokens: 100 })
    expect(reserved.ok).toBe(true)
    expect(reserved.key.id).toBe('solo')
  })

  it('check accepts a single key object without creating a hold', async () => {
    const store = makeStore()
    const quota = newQuota({ store, now: () => 0, id: () => 'hold-1' })
    const checked = await quota.check('tenant-a', singleKey(), { tokens: 100 })
    expect(checked.ok).toBe(true)
    expect(checked.key.id).toBe('solo')
    expect(Object.keys(checked)).toEqual(['ok', 'key', 'tokens', 'waitMs', 'checks'])
    expect((await stateOf(store, 'tenant-a')).keys.solo.used).toBe(0)
  })

  it('reserve falls through to the next key during rpm cooldown', async () => {
    let now = 0
    const quota = newQuota({ store: makeStore(), now: () => now, id: () => `hold-${now}` })
    const first = await quota.reserve('tenant-a', keys(), { tokens: 100 })
    now = 500
    const second = await quota.reserve('tenant-a', keys(), { tokens: 100 })
    expect([first.ok, first.key.id, second.ok, second.key.id]).toEqual([true, 'primary', true, 'backup'])
  })

  it('reserve blocks when all keys are cooling down', async () => {
    let now = 0
    const quota = newQuota({ store: makeStore(), now: () => now, id: () => `hold-${now}` })
    expect((await quota.reserve('tenant-a', keys(), { tokens: 100 })).key.id).toBe('primary')
    expect((await quota.reserve('tenant-a', keys(), { tokens: 100 })).key.id).toBe('backup')
    now = 500
    const blocked = await quota.reserve('tenant-a', keys(), { tokens: 100 })
    expect(blocked).toMatchObject({ ok: false, reason: 'rpm', waitMs: 4_500, tokens: 100 })
    expect(Object.keys(blocked)).toEqual(['ok', 'reason', 'tokens', 'waitMs', 'checks'])
    expect(blocked.checks.map((c: any) => c.priority)).toEqual([10, 1])
    for (const c of blocked.checks) {
      expect(c).toMatchObject({ ok: false, reason: 'rpm', waitMs: 4_500, rpmMs: 4_500, tpmMs: 0, tokenUsed: 100, tokenPct: 0.1, dailyUsed: 1, dailyCap: 10, dailyLeft: 9, dailyPct: 0.1 })
    }
  })

  it('commit updates estimated tokens to actual tokens', async () => {
    const store = makeStore()
    const quota = newQuota({ store, now: () => 0, id: () => 'hold-1' })
    const reserved = await quota.reserve('tenant-a', keys(), { tokens: 100 })
    expect(reserved.ok).toBe(true)
    expect(await quota.commit(reserved.hold, { tokens: 250 })).toBe(true)
    const state = (await stateOf(store, 'tenant-a'))
    expect(state.keys.primary.hits[0].tokens).toBe(250)
    expect(Object.keys(state.keys.primary.holds)).toHaveLength(0)
    expect(await quota.commit(reserved.hold, { tokens: 1 })).toBe(false) // already committed
  })

  it('rollback releases rpm, tpm, and rpd reservation state', async () => {
    const store = makeStore()
    const quota = newQuota({ store, now: () => 0, id: () => 'hold-1' })
    const reserved = await quota.reserve('tenant-a', keys(), { tokens: 100 })
    expect(await quota.rollback(reserved.hold)).toBe(true)
    const primary = (await stateOf(store, 'tenant-a')).keys.primary
    expect(primary.used).toBe(0)
    expect(primary.hits).toHaveLength(0)
    expect(primary.lastAt).toBeUndefined()
    expect(await quota.rollback(reserved.hold)).toBe(false)
  })

  it('estimate option can derive tokens from custom requests', async () => {
    const quota = newQuota({ store: makeStore(), now: () => 0, id: () => 'hold-1', estimate: (req: any) => req.prompt.length + req.max })
    const reserved = await quota.reserve('tenant-a', keys(), { prompt: 'hello', max: 95 })
    expect(reserved.ok).toBe(true)
    expect(reserved.hold.tokens).toBe(100)
  })

  it('the default estimator sanitises like rate-budget', async () => {
    const quota = newQuota({ store: makeStore(), now: () => 0 })
    const key = { id: 'k', rpm: 1, tpm: 1e9, rpd: 1e9 }
    const cases: Array<[unknown, number]> = [[undefined, 1], [null, 1], [7, 7], [7.9, 7], [-3, 0], [NaN, 0], [Infinity, 0], ['12', 1], [{}, 1], [{ tokens: 42 }, 42], [{ tokens: '42' }, 1], [{ tokens: 3.7 }, 3], [{ tokens: -1 }, 0], [[1, 2], 1]]
    for (const [req, tokens] of cases) expect((await quota.check('s', key, req)).tokens, String(req)).toBe(tokens)
  })

  // rate-budget's PHP port's checks.
  it('PHP suite: commit, priority, rpm block and rollback, rpd, tpm hard block', async () => {
    const now = 1_700_000_000_000
    const store = makeStore()
    const quota = newQuota({ store, now: () => now, id: () => 'hold-1' })
    const keyA = { id: 'key-a', rpm: 15, tpm: 250_000, rpd: 500 }
    const r = await quota.reserve('scope:1', keyA, { tokens: 800 })
    expect(r.ok && r.key === keyA && !('reason' in r)).toBe(true)
    expect(await quota.commit(r.hold, { tokens: 742 })).toBe(true)
    expect((await stateOf(store, 'scope:1')).keys['key-a'].hits[0].tokens).toBe(742)

    const two = [{ id: 'key-a', rpm: 15, tpm: 250_000, rpd: 500, priority: 5 }, { id: 'key-b', rpm: 15, tpm: 250_000, rpd: 500, priority: 10 }]
    expect((await quota.check('scope:2', two, 1_500)).key.id).toBe('key-b')

    const k = { id: 'k', rpm: 15, tpm: 1_000, rpd: 500 }
    const held = await quota.reserve('scope:3', k, 800)
    const blocked = await quota.check('scope:3', k, 100)
    expect(blocked).toMatchObject({ ok: false, reason: 'rpm', waitMs: 5_000 })
    expect(blocked.checks[0]).toMatchObject({ tokenUsed: 800, tokenPct: 0.8, dailyPct: 0.002 })
    expect(await quota.rollback(held.hold)).toBe(true)
    expect((await stateOf(store, 'scope:3')).keys.k.used).toBe(0)

    const daily = { id: 'daily', rpm: 999, tpm: 999_999, rpd: 1 }
    const q2 = newQuota({ store, now: () => now, thresholdPct: 100 })
    expect((await q2.reserve('scope:4', daily, 1)).ok).toBe(true)
    const rpd = await q2.check('scope:4', daily, 1)
    expect(rpd).toMatchObject({ ok: false, reason: 'rpd', waitMs: 6_400_000 })
    expect(rpd.checks[0].rpmMs).toBe(1_061)

    const tiny = await quota.check('scope:5', { id: 'tiny', rpm: 999, tpm: 10, rpd: 999 }, 11)
    expect(tiny).toMatchObject({ ok: false, reason: 'tpm', waitMs: null })
    expect((await new (QuotaManager as any)({ store }).check('scope:7', { id: 'alias', rpm: 1, tpm: 1, rpd: 1 }, 1)).ok).toBe(true)
  })

  // Further cases, checked against rate-budget's code.
  it('TPM: hard block, boundary, sliding window', async () => {
    let t = 0
    const quota = newQuota({ store: makeStore(), now: () => t })
    const small = { id: 's', rpm: 15, tpm: 10, rpd: 10 }
    expect(await quota.check('h', small, { tokens: 11 })).toMatchObject({ reason: 'tpm', waitMs: null, checks: [{ tpmMs: null }] })
    expect((await quota.check('h', small, { tokens: 10 })).ok).toBe(true)
    const a = { id: 'a', rpm: 6_000, tpm: 1_000, rpd: 100 }
    await quota.reserve('w', a, 600)
    t = 10_000
    await quota.reserve('w', a, 300)
    t = 20_000
    expect(await quota.check('w', a, 200)).toMatchObject({ reason: 'tpm', waitMs: 41_000, checks: [{ tokenUsed: 900 }] })
    expect((await quota.check('w', a, 100)).ok).toBe(true)
    t = 60_000
    expect(await quota.check('w', a, 200)).toMatchObject({ reason: 'tpm', waitMs: 1_000 })
    t = 60_001
    expect(await quota.check('w', a, 200)).toMatchObject({ ok: true, checks: [{ tokenUsed: 300 }] })
  })

  it('RPD resets with the UTC day', async () => {
    let t = 0
    const quota = newQuota({ store: makeStore(), now: () => t })
    const d = { id: 'd', rpm: 60_000, tpm: 1e9, rpd: 1 }
    await quota.reserve('s', d, 1)
    t = 5_000
    expect(await quota.check('s', d, 1)).toMatchObject({ reason: 'rpd', waitMs: 86_395_000 })
    t = 86_400_000
    expect(await quota.check('s', d, 1)).toMatchObject({ ok: true, checks: [{ dailyUsed: 0 }] })
  })

  it('a key waits for its longest reason; a blocked result for its shortest key', async () => {
    const key = { id: 'k', rpm: 1, tpm: 1e9, rpd: 1 }
    const q1 = newQuota({ store: makeStore(), now: () => 1_000, resetAt: (n: number) => n + 3_000 })
    await q1.reserve('s', key, 1)
    expect(await q1.check('s', key, 1)).toMatchObject({ reason: 'rpm', waitMs: 61_000 })
    const q2 = newQuota({ store: makeStore(), now: () => 1_000, resetAt: (n: number) => n + 61_000 })
    await q2.reserve('s', key, 1)
    expect(await q2.check('s', key, 1)).toMatchObject({ reason: 'rpd', waitMs: 61_000 })
    let t = 0
    const q3 = newQuota({ store: makeStore(), now: () => t, resetAt: (n: number) => n })
    await q3.reserve('s', { id: 'z', rpm: 60_000, tpm: 1e9, rpd: 1 }, 1)
    t = 2_000
    expect(await q3.check('s', { id: 'z', rpm: 60_000, tpm: 1e9, rpd: 1 }, 1)).toMatchObject({ ok: false, reason: 'rpd', waitMs: 0 })
    const mixed = [{ id: 'o', rpm: 1, tpm: 100, rpd: 10, enabled: false }, { id: 'r', rpm: 60, tpm: 100, rpd: 10 }, { id: 'r2', rpm: 30, tpm: 100, rpd: 10 }]
    let u = 0
    const q4 = newQuota({ store: makeStore(), now: () => u })
    expect((await q4.reserve('s', mixed, 1)).key.id).toBe('r')
    expect((await q4.reserve('s', mixed, 1)).key.id).toBe('r2')
    u = 100
    expect(await q4.check('s', mixed, 1)).toMatchObject({ reason: 'rpm', waitMs: 1_900 })
  })

  it('off keys, hard blocks first, and empty lists', async () => {
    const quota = newQuota({ store: makeStore(), now: () => 0 })
    const off = { id: 'x', rpm: 1, tpm: 1, rpd: 1, enabled: false }
    const r = await quota.check('s', [off], 5)
    expect(r).toMatchObject({ ok: false, reason: 'off', waitMs: null })
    expect(r.checks[0]).toStrictEqual({ key: 'x', ok: false, reason: 'off', waitMs: null, priority: 0, rpmMs: 0, tpmMs: null, tokenUsed: 0, tokenPct: 0, dailyUsed: 0, dailyCap: 1, dailyLeft: 1, dailyPct: 0 })
    expect(await quota.check('s', [{ id: 'h', rpm: 1, tpm: 1, rpd: 1 }, off], 5)).toMatchObject({ reason: 'tpm', waitMs: null })
    expect(await quota.check('s', [], 5)).toStrictEqual({ ok: false, reason: 'no_key', tokens: 5, waitMs: null, checks: [] })
    expect((await quota.check('s', { ...off, enabled: 0 as any }, 1)).ok).toBe(true)
  })

  it('tie-breaks: tokenPct, dailyPct, then localeCompare', async () => {
    const quota = newQuota({ store: makeStore(), now: () => 0 })
    const same = (id: string) => ({ id, rpm: 60_000, tpm: 1_000, rpd: 10 })
    expect((await quota.check('s', [same('b'), same('a'), same('C')], 1)).key.id).toBe('a')
    await quota.reserve('s', [same('a')], 10)
    expect((await quota.check('s', [same('b'), same('a'), same('C')], 1)).key.id).toBe('b')
    expect((await quota.check('x', ['key-10', 'key-9', 'Key-1'].map(same), 1)).key.id).toBe('Key-1')
    expect((await quota.check('y', [{ ...same('p'), priority: '5' as any }, { ...same('q'), priority: 1 }], 1)).key.id).toBe('q')
  })

  it('id quirks: non-string ids, missing ids, duplicates, missing limits', async () => {
    const store = makeStore()
    const quota = newQuota({ store, now: () => 0 })
    const numeric = await quota.check('s', { id: 5 as any, rpm: 1, tpm: 10, rpd: 1 }, 1)
    expect(numeric).toMatchObject({ ok: false, reason: 'no_key', waitMs: null, checks: [{ ok: true }] })
    expect(await quota.check('m', { rpm: 1, tpm: 10, rpd: 1 } as any, 1)).toMatchObject({ reason: 'no_key' })
    expect((await stateOf(store, 'm')).keys).toHaveProperty('undefined')
    const d1 = { id: 'dup', rpm: 1, tpm: 10, rpd: 1 }
    const d2 = { id: 'dup', rpm: 1, tpm: 10, rpd: 1 }
    expect((await quota.check('d', [d1, d2], 1)).key).toBe(d1)
    expect(await quota.check('b', { id: 'm' } as any, 1)).toMatchObject({ ok: true, checks: [{ dailyCap: 1 }] })
  })

  it('rollback order, and across a day', async () => {
    let t = 0
    const store = makeStore()
    const quota = newQuota({ store, now: () => t, id: () => `h${t}` })
    const a = { id: 'a', rpm: 60, tpm: 1_000, rpd: 5 }
    const h1 = (await quota.reserve('s', a, 10)).hold
    t = 2_000
    const h2 = (await quota.reserve('s', a, 20)).hold
    expect(h2).toMatchObject({ prevAt: 0, prevId: 'h0' })
    expect(await quota.rollback(h1)).toBe(true)
    expect((await stateOf(store, 's')).keys.a).toMatchObject({ used: 1, hits: [{ id: 'h2000' }], lastAt: 2_000 })
    expect(await quota.rollback(h2)).toBe(true)
    expect((await stateOf(store, 's')).keys.a).toMatchObject({ used: 0, lastAt: 0, lastId: 'h0' })

    t = 86_399_990
    const late = (await quota.reserve('day', a, 1)).hold
    t = 86_400_005
    await quota.check('day', a, 1)
    expect(await quota.rollback(late)).toBe(true)
    expect((await stateOf(store, 'day')).keys.a.used).toBe(0)
  })

  it('a JSON copy of a hold commits; an unknown hold, or one from another scope, does not', async () => {
    const quota = newQuota({ store: makeStore(), now: () => 0 })
    const { hold } = await quota.reserve('s', singleKey(), 10)
    expect(await quota.commit({ ...hold, scope: 'other' })).toBe(false)
    expect(await quota.rollback({ ...hold, key: 'nope' })).toBe(false)
    expect(await quota.commit({ id: 'zz', scope: 's', key: 'solo' } as any)).toBe(false)
    expect(await quota.commit(JSON.parse(JSON.stringify(hold)))).toBe(true)
  })

  it('clocks going backwards (as rate-budget with monotonic: false), fractional clocks', async () => {
    let t = 10_000
    const quota = newQuota({ store: makeStore(), now: () => t, monotonic: false })
    const k = { id: 'k', rpm: 15, tpm: 1_000, rpd: 10 }
    await quota.reserve('s', k, 5)
    t = 5_000
    expect((await quota.check('s', k, 1)).checks[0]).toMatchObject({ tokenUsed: 0, rpmMs: 10_000 })
    t = 1_000.5
    await quota.reserve('f', k, 5)
    t = 1_200.25
    expect((await quota.check('f', k, 1)).waitMs).toBe(4_800.25)
  })

  it('options sanitise like rate-budget', async () => {
    const key = { id: 'k', rpm: 7, tpm: 1_000, rpd: 10 }
    const rpmMs = async (o: object) => {
      const quota = newQuota({ store: makeStore(), now: () => 0, ...o })
      await quota.reserve('s', key, 1)
      return (await quota.check('s', key, 1)).checks[0].rpmMs
    }
    expect(await rpmMs({ windowMs: 0 })).toBe(1_001)
    expect(await rpmMs({ windowMs: -5 })).toBe(1_001)
    expect(await rpmMs({ windowMs: NaN })).toBe(9_572)
    expect(await rpmMs({ windowMs: null })).toBe(9_572)
    expect(await rpmMs({ windowMs: 1_500.7 })).toBe(1_215)
    expect(await rpmMs({ bufferMs: -1 })).toBe(8_572)
    expect(await rpmMs({ bufferMs: NaN })).toBe(9_572)
    const cap = async (thresholdPct: number) => (await newQuota({ store: makeStore(), now: () => 0, thresholdPct }).check('s', key, 1)).checks[0].dailyCap
    expect([await cap(-1), await cap(150), await cap(33.3)]).toEqual([0, 10, 4])
  })

  // Beyond rate-budget.
  it('by default time never goes backwards in a scope, so no reservation is forgotten', async () => {
    let t = 10_000
    const quota = newQuota({ store: makeStore(), now: () => t, bufferMs: 0 })
    const k = { id: 'k', rpm: 60_000, tpm: 1_000, rpd: 10 }
    await quota.reserve('s', k, 900)
    t = 9_990 // a caller whose clock read earlier arrives later
    expect((await quota.check('s', k, 200)).checks[0].tokenUsed).toBe(900)
    t = 10_002
    expect(await quota.reserve('s', k, 200)).toMatchObject({ ok: false, reason: 'tpm' })
  })

  it('bufferMs 0 never admits over TPM (strictTpm: false restores rate-budget)', async () => {
    const key = { id: 'k', rpm: 60_000, tpm: 1_000, rpd: 100 }
    for (const [strictTpm, ok] of [[true, false], [false, true]] as const) {
      let t = 0
      const quota = newQuota({ store: makeStore(), now: () => t, bufferMs: 0, strictTpm })
      await quota.reserve('s', key, 900)
      t = 60_000
      expect((await quota.check('s', key, 200)).ok).toBe(ok)
    }
  })

  it('holds expire and roll back (holdTtlMs, default 10 minutes; null keeps them forever)', async () => {
    const key = { id: 'k', rpm: 60_000, tpm: 1_000, rpd: 1 }
    let t = 0
    const quota = newQuota({ store: makeStore(), now: () => t })
    const { hold } = await quota.reserve('s', key, 100)
    t = 599_999
    expect((await quota.check('s', key, 1)).reason).toBe('rpd')
    t = 600_000
    expect((await quota.check('s', key, 1)).ok).toBe(true)
    expect(await quota.commit(hold)).toBe(false)
    let u = 0
    const forever = newQuota({ store: makeStore(), now: () => u, holdTtlMs: null })
    await forever.reserve('s', key, 100)
    u = 3_600_000
    expect((await forever.check('s', key, 1)).reason).toBe('rpd')
  })

  it('tokens per day (tpd) on a key', async () => {
    let t = 0
    const quota = newQuota({ store: makeStore(), now: () => t })
    const key = { id: 'k', rpm: 60_000, tpm: 1e9, rpd: 1_000, tpd: 1_000 }
    const { hold } = await quota.reserve('s', key, 900)
    t = 2_000
    expect(await quota.check('s', key, 200)).toMatchObject({ ok: false, reason: 'tpd' })
    await quota.commit(hold, { tokens: 700 })
    expect((await quota.check('s', key, 200)).ok).toBe(true)
  })

  it('bad input is a typed error and leaves the state as it was', async () => {
    const store = makeStore()
    const quota = newQuota({ store, now: () => 0 })
    await quota.reserve('s', singleKey(), 10)
    const before = JSON.stringify(await stateOf(store, 's'))
    await expect(quota.reserve('s', null as any, 1)).rejects.toMatchObject({ name: 'TypeError', code: 'ERR_TOLLGATE_INVALID_ARG' })
    await expect(quota.reserve('s', [singleKey(), null] as any, 1)).rejects.toMatchObject({ code: 'ERR_TOLLGATE_INVALID_ARG' })
    await expect(quota.reserve(5 as any, singleKey(), 1)).rejects.toMatchObject({ code: 'ERR_TOLLGATE_INVALID_ARG' })
    await expect(quota.commit(null as any)).rejects.toMatchObject({ code: 'ERR_TOLLGATE_INVALID_ARG' })
    await expect(quota.commit({ id: 'x', scope: 's' } as any)).rejects.toMatchObject({ code: 'ERR_TOLLGATE_INVALID_ARG' })
    await expect(quota.commit({ id: 'x', scope: 's', key: 'solo' }, null as any)).rejects.toMatchObject({ code: 'ERR_TOLLGATE_INVALID_ARG' })
    expect(JSON.stringify(await stateOf(store, 's'))).toBe(before)
  })
})

describe('Quota options and stores', () => {
  it('a store whose mutate throws rejects and changes nothing', async () => {
    const quota = newQuota({
      store: {
        mutate() {
          throw new Error('disk full')
        },
      },
    })
    await expect(quota.reserve('s', singleKey(), 1)).rejects.toThrow('disk full')
  })

  it('each Quota without a store has its own MemoryStore', async () => {
    const a = newQuota({ now: () => 0 })
    const b = newQuota({ now: () => 0 })
    const key = { id: 'k', rpm: 1, tpm: 100, rpd: 1 }
    expect((await a.reserve('s', key, 1)).ok).toBe(true)
    expect((await b.reserve('s', key, 1)).ok).toBe(true)
    expect((await a.reserve('s', key, 1)).ok).toBe(false)
  })

  it('MemoryStore get/set/reset/size in rate-budget shape', async () => {
    const store = new MemoryStore()
    store.set('scope:6', { keys: {} })
    expect(store.size()).toBe(1)
    expect(store.get('scope:6')).toEqual({ keys: {} })
    store.reset('scope:6')
    expect(store.size()).toBe(0)
    store.set('a', { keys: {} })
    store.set('b', { keys: {} })
    store.reset()
    expect(store.size()).toBe(0)
  })

  it('on a MemoryStore, answers with an already-resolved promise (no thread hop)', async () => {
    const quota = new Quota({ now: () => 0 })
    let settled = false
    quota.reserve('s', { id: 'k', rpm: 1, tpm: 10, rpd: 1 }, 1).then(() => (settled = true))
    await Promise.resolve()
    expect(settled).toBe(true)
  })

  it('NaN, negative, huge and missing limits give defined results, as rate-budget sanitises them', async () => {
    const quota: any = new Quota({ now: () => 0 })
    const weird = [
      { id: 'nan', rpm: NaN, tpm: NaN, rpd: NaN },
      { id: 'neg', rpm: -5, tpm: -5, rpd: -5 },
      { id: 'huge', rpm: 1e300, tpm: 1e300, rpd: 1e300, priority: -1 },
      { id: 'str', rpm: '60', tpm: '1000', rpd: '10' },
    ]
    const r = await quota.reserve('s', weird, 1)
    expect(r.ok).toBe(true)
    expect(r.checks.map((c: any) => c.dailyCap)).toEqual([1, 1, 1e300, 1])
    // The limits of 1 on every other key leave 'huge' as the only key with room for 2 tokens.
    expect((await quota.check('s', weird, 2)).key.id).toBe('huge')
  })

  it('rejects a store it cannot use', () => {
    expect(() => newQuota({ store: {} as any })).toThrow(expect.objectContaining({ code: 'ERR_TOLLGATE_INVALID_ARG' }))
  })
})

describe('a scope outlives its commits until its day ends', () => {
  // A commit or rollback used to keep the scope only 2 × window + buffer, so a key committed at
  // 10:00 and next asked at 10:05 had lost its day's request count (RPD reset: over-admission).
  it('on a MemoryStore: the day count survives minutes without a reservation', async () => {
    let now = Date.UTC(2026, 0, 1, 10)
    const store = new MemoryStore({ now: () => now })
    // Holds that never expire (rate-budget's default), so nothing else keeps the scope longer.
    const quota: any = new Quota({ store, now: () => now, holdTtlMs: null })
    const key = { id: 'k', rpm: 60, tpm: 1e6, rpd: 2 }
    const r = await quota.reserve('s', key, 10)
    now += 1_000
    expect(await quota.commit(r.hold, { tokens: 5 })).toBe(true)
    now += 5 * 60_000
    expect((await quota.check('s', key, 1)).checks[0].dailyUsed).toBe(1)
    const again = await quota.reserve('s', key, 1)
    now += 5 * 60_000
    expect(await quota.rollback(again.hold)).toBe(true)
    now += 5 * 60_000
    expect((await quota.check('s', key, 1)).checks[0].dailyUsed).toBe(1)
  })

  it('on a RedisStore: a commit leaves every key of the scope living until midnight', async () => {
    const store = new InspectableRedisStore()
    const now = Date.now()
    const quota: any = new Quota({ store, prefix: store.prefix, now: () => now })
    const r = await quota.reserve('s', { id: 'k', rpm: 60, tpm: 1e6, rpd: 2 }, 10)
    expect(await quota.commit(r.hold, { tokens: 5 })).toBe(true)
    const untilMidnight = Date.UTC(new Date(now).getUTCFullYear(), new Date(now).getUTCMonth(), new Date(now).getUTCDate() + 1) - now
    for (const part of [':k', ':h', ':x']) {
      const ttl = await redis.pttl(`${store.prefix}{qs}${part}`)
      expect(ttl).toBeGreaterThan(Math.max(121_000, untilMidnight - 60_000))
    }
  })
})

describe.each(stores)('a reused hold id touches only its own reservation [%s]', (_name, makeStore) => {
  // rate-budget finds hits by hold id: with `id: () => 'h'` a rollback removed every hit named
  // 'h' (other requests' tokens: TPM under-counted) and a commit charged the oldest one.
  it('commit and rollback of the newest hold leave the earlier request counted', async () => {
    let now = 0
    const quota = newQuota({ store: makeStore(), now: () => now, id: () => 'h', bufferMs: 0 })
    const key = { id: 'k', rpm: 60_000, tpm: 1_000, rpd: 100 }
    const first = await quota.reserve('s', key, 100)
    expect(await quota.commit(first.hold, { tokens: 300 })).toBe(true)
    now = 10
    const second = await quota.reserve('s', key, 200)
    expect(await quota.commit(second.hold, { tokens: 50 })).toBe(true)
    now = 20
    const third = await quota.reserve('s', key, 100)
    expect(await quota.rollback(third.hold)).toBe(true)
    now = 30
    const c = (await quota.check('s', key, 1)).checks[0]
    expect([c.tokenUsed, c.dailyUsed]).toEqual([350, 2])
  })
})

describe.each(stores)('RPM as a sliding window (rpmWindow) [%s]', (_name, makeStore) => {
  it('a key of rpm 500 takes 500 requests at once, then waits for the oldest to leave', async () => {
    let now = 1_000_000
    let n = 0
    const quota = newQuota({ store: makeStore(), now: () => now, id: () => `h${n++}`, rpmWindow: true })
    const key = { id: 'k', rpm: 500, tpm: 1e9, rpd: 1e6 }
    const holds = []
    for (let i = 0; i < 500; i++) {
      const r = await quota.reserve('s', key, 1)
      expect(r.ok).toBe(true)
      holds.push(r.hold)
      now += 2
    }
    const refused = await quota.reserve('s', key, 1)
    // The first request leaves the 60 s window at 1,060,000; plus the 1 s buffer.
    expect(refused).toMatchObject({ ok: false, reason: 'rpm', waitMs: 61_000 - 1_000 })
    expect(await quota.rollback(holds[250])).toBe(true)
    expect((await quota.reserve('s', key, 1)).ok).toBe(true)
    expect((await quota.reserve('s', key, 1)).ok).toBe(false)
    now = 1_000_000 + 60_000 + 1
    expect((await quota.reserve('s', key, 1)).ok).toBe(true)
  }, 60_000) // a user's { mutate } store converts the whole state each call: O(window)

  it("by default RPM is rate-budget's spacing: the second request at once waits", async () => {
    const quota = newQuota({ store: makeStore(), now: () => 0 })
    const key = { id: 'k', rpm: 500, tpm: 1e9, rpd: 1e6 }
    expect((await quota.reserve('s', key, 1)).ok).toBe(true)
    expect(await quota.reserve('s', key, 1)).toMatchObject({ ok: false, reason: 'rpm', waitMs: 1_120 })
  })
})

describe('the store may come first, as every other class takes it', () => {
  it('new Quota(store, options) uses that store', async () => {
    const store = new MemoryStore()
    const quota: any = new Quota(store, { now: () => 0 })
    await quota.reserve('s', { id: 'k', rpm: 1, tpm: 10, rpd: 1 }, 1)
    expect(store.get('s')?.keys.k.used).toBe(1)
  })

  it('on Redis: two Quotas built store-first share their scopes', async () => {
    const a = new InspectableRedisStore()
    const b = new RedisStore(redisUrl())
    opened.push(b)
    const q1: any = new Quota(a, { prefix: a.prefix, now: () => 0 })
    const q2: any = new Quota(b, { prefix: a.prefix, now: () => 0 })
    expect((await q1.reserve('s', { id: 'k', rpm: 60, tpm: 10, rpd: 1 }, 1)).ok).toBe(true)
    expect(await q2.reserve('s', { id: 'k', rpm: 60, tpm: 10, rpd: 1 }, 1)).toMatchObject({ ok: false, reason: 'rpd' })
  })

  it('a store given twice, options after options, or a bad flag are refused', () => {
    const store = new MemoryStore()
    const code = { code: 'ERR_TOLLGATE_INVALID_ARG' }
    expect(() => new Quota(store, { store } as any)).toThrow(expect.objectContaining(code))
    expect(() => new (Quota as any)({ now: () => 0 }, { now: () => 0 })).toThrow(expect.objectContaining(code))
    expect(() => new Quota({ rpmWindow: 'yes' } as any)).toThrow(expect.objectContaining(code))
  })
})

describe.each(stores)('commit takes what the call returned [%s]', (_name, makeStore) => {
  it('an OpenAI response, a number, rate-budget’s { tokens }, and nothing (the estimate stays)', async () => {
    let n = 0
    let now = 0
    const quota = newQuota({ store: makeStore(), now: () => now, id: () => `h${n++}`, bufferMs: 0 })
    const key = { id: 'k', rpm: 60_000, tpm: 10_000, rpd: 100 }
    const completion = { object: 'chat.completion', usage: { prompt_tokens: 120, completion_tokens: 30, total_tokens: 150, prompt_tokens_details: { cached_tokens: 100 } } }
    const anthropic = { type: 'message', usage: { input_tokens: 10, output_tokens: 5, cache_read_input_tokens: 20 } }
    for (const usage of [completion, 77, { tokens: 40 }, anthropic, undefined]) {
      now += 10
      const r = await quota.reserve('s', key, 500)
      expect(await quota.commit(r.hold, usage as any)).toBe(true)
    }
    // 150 + 77 + 40 + (10 + 20 cached + 5) + the kept estimate of 500
    expect((await quota.check('s', key, 1)).checks[0].tokenUsed).toBe(150 + 77 + 40 + 35 + 500)
  })

  it('a value with no usage is refused, and the hold stays outstanding', async () => {
    const quota = newQuota({ store: makeStore(), now: () => 0 })
    const r = await quota.reserve('s', { id: 'k', rpm: 60_000, tpm: 10_000, rpd: 100 }, 500)
    await expect(quota.commit(r.hold, { id: 'chatcmpl-1', choices: [] })).rejects.toMatchObject({ code: 'ERR_TOLLGATE_NO_USAGE' })
    await expect(quota.commit(r.hold, null)).rejects.toMatchObject({ code: 'ERR_TOLLGATE_INVALID_ARG' })
    expect(await quota.rollback(r.hold)).toBe(true)
  })
})

describe.each(stores)('inputs that could name another scope or key are refused alike [%s]', (_name, makeStore) => {
  it('lone surrogates in a scope, a key id or a hold; a clock out of Date range', async () => {
    const quota = newQuota({ store: makeStore(), now: () => 0 })
    const key = { id: 'k', rpm: 60, tpm: 100, rpd: 10 }
    const code = { code: 'ERR_TOLLGATE_INVALID_ARG' }
    await expect(quota.reserve('s\uD800', key, 1)).rejects.toMatchObject(code)
    await expect(quota.reserve('s', { ...key, id: 'k\uDBFF' }, 1)).rejects.toMatchObject(code)
    const r = await quota.reserve('s', key, 1)
    await expect(quota.commit({ ...r.hold, scope: 's\uDFFF' }, { tokens: 1 })).rejects.toMatchObject(code)
    expect(await quota.commit(r.hold, { tokens: 1 })).toBe(true)
    const far = newQuota({ store: makeStore(), now: () => 1e300 })
    await expect(far.reserve('s', key, 1)).rejects.toMatchObject({ code: 'ERR_TOLLGATE_OUT_OF_RANGE' })
  })
})

describe('scopes that look alike never share state', () => {
  // Scopes with braces, the escapes themselves, separators, NUL and long text: each one its own
  // scope on every store (on Redis the scope is the hash tag, escaped, so it can neither end the
  // tag early nor be empty).
  const scopes = ['a{b}', 'a%7Bb%7D', 'a}b', '{q}', '', '}', '{', '%', '%25', 'a:b', 'a\u0000b', 'x'.repeat(1024), 'tenant:{x}', 'é{}']
  const cases: Array<[string, () => any]> = [
    ['MemoryStore', () => new MemoryStore()],
    ['RedisStore', () => new InspectableRedisStore()],
    ['Cluster', () => {
      const s = new RedisStore({ cluster: clusterUrls(), commandTimeoutMs: 5_000 })
      opened.push(s)
      return s
    }],
  ]
  it.each(cases)('%s', async (_name, make) => {
    const store = make()
    const quota: any = new Quota(store, { now: () => 0, prefix: `t:quota:iso:${Math.random().toString(36).slice(2)}:` })
    const key = { id: 'k', rpm: 60, tpm: 100, rpd: 1 }
    for (const s of scopes) expect([s, (await quota.reserve(s, key, 1)).ok]).toEqual([s, true])
    for (const s of scopes) expect([s, (await quota.reserve(s, key, 1)).reason]).toEqual([s, 'rpd'])
  })
})

describe('key lists that join alike keep their own tie-break order', () => {
  it("['b\\0c', 'a'] and ['b', 'c\\0a'] each pick by their own localeCompare order", async () => {
    const quota: any = new Quota({ now: () => 0 })
    const k = (id: string) => ({ id, rpm: 60, tpm: 100, rpd: 10 })
    // Equal in every measure, so the last tie-break (localeCompare) decides. Joined with NUL
    // both lists read "b\0c\0a": the second used to get the first's order and pick 'c\0a'.
    expect((await quota.check('s1', [k('b\u0000c'), k('a')], 1)).key.id).toBe('a')
    expect((await quota.check('s2', [k('b'), k('c\u0000a')], 1)).key.id).toBe('b')
  })
})
