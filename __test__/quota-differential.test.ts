// One truth for Quota: the same random sequences of check / reserve / commit / rollback / pause and
// clock jumps (forwards, and backwards where the options allow) run on a MemoryStore (the Rust
// engine) and on a real Redis and a 3-master Cluster (quota.lua), and every answer must be the
// same. A failing sequence prints its seed; `QUOTA_SEED=<seed>` replays just that one.
import { afterAll, describe, expect, it } from 'vitest'
import { rng } from './helpers/prng.js'
import { clusterUrls, redisUrl } from './helpers/stores.js'
import { MemoryStore, Quota, RedisStore } from '../lib/index.js'

const opened: RedisStore[] = []
afterAll(async () => {
  await Promise.all(opened.map((s) => s.close()))
})

type Target = 'redis' | 'cluster'
function redisStore(target: Target) {
  const s = target === 'redis' ? new RedisStore(redisUrl()) : new RedisStore({ cluster: clusterUrls(), commandTimeoutMs: 5_000 })
  opened.push(s)
  return s
}

/** Runs one random sequence on both stores; returns the first difference, or null. */
async function runSequence(seed: number, target: Target, steps: number): Promise<string | null> {
  const r = rng(seed)
  const clock = { t: Date.UTC(2026, 0, 1, 23, 58) }
  const now = () => clock.t
  const options = {
    windowMs: r.pick([1_000, 60_000]),
    bufferMs: r.pick([0, 1_000]),
    thresholdPct: r.pick([100, 50]),
    strictTpm: r.next() < 0.5,
    monotonic: r.next() < 0.5,
    holdTtlMs: r.pick([null, 2_000, 30_000]),
    rpmWindow: r.next() < 0.4,
  }
  const repeatIds = r.next() < 0.3
  let n = 0
  const ids = { a: 0, b: 0 }
  const idFor = (side: 'a' | 'b') => () => {
    const i = ids[side]++
    return repeatIds ? `h${i % 4}` : `h${i}`
  }
  const prefix = `t:qdiff:${seed}:`
  // The stores keep scopes by the real clock (Redis cannot follow a simulated one), so a scope
  // lives as long on both; the decisions follow the simulated clock `now`.
  const mem = new Quota({ ...options, store: new MemoryStore(), now, id: idFor('a') })
  const red = new Quota({ ...options, store: redisStore(target), prefix, now, id: idFor('b') })
  const keys = ['b', 'a', 'C'].map((id) => ({
    id,
    rpm: r.pick([1, 3, 15, 600, 60_000]),
    tpm: r.pick([50, 300, 1_000]),
    rpd: r.pick([3, 20, 1e6]),
    ...(r.next() < 0.4 ? { tpd: r.pick([200, 5_000]) } : {}),
    priority: r.int(3),
    enabled: r.next() < 0.9,
  }))
  const holds: Array<[any, any]> = []
  const tokens = () => r.pick([0, 1, 7, 25, 39, 100, 300])
  const scope = r.pick(['s', 'tenant:{x}', '%7B'])
  for (let step = 0; step < steps; step++) {
    const kind = r.pick(['check', 'check', 'reserve', 'reserve', 'reserve', 'reserve', 'commit', 'commit', 'rollback', 'pause', 'jump', 'jump', 'jump'])
    const subset = Array.from({ length: r.int(4) }, () => keys[r.int(3)])
    let a: unknown
    let b: unknown
    if (kind === 'check' || kind === 'reserve') {
      const t = tokens()
      a = await mem[kind](scope, subset, t)
      b = await red[kind](scope, subset, t)
      if (kind === 'reserve' && (a as any).ok && (b as any).ok) holds.push([(a as any).hold, (b as any).hold])
    } else if ((kind === 'commit' || kind === 'rollback') && holds.length > 0) {
      const [ha, hb] = holds[r.int(holds.length)]
      if (kind === 'commit') {
        const usage = r.next() < 0.3 ? {} : { tokens: tokens() }
        a = await mem.commit(ha, usage)
        b = await red.commit(hb, usage)
      } else {
        a = await mem.rollback(ha)
        b = await red.rollback(hb)
      }
    } else if (kind === 'pause') {
      // The provider said a key is exhausted until then (a time already past changes nothing).
      const key = keys[r.int(3)]
      const until = clock.t + r.pick([-1_000, 0, 1, 500, 30_000, 90_000_000])
      a = await mem.pause(scope, key, until)
      b = await red.pause(scope, key.id, until)
    } else if (kind === 'jump') {
      const dt = r.pick([0, 1, 250, 1_000, 2_999, 59_999, 60_000, 60_001, 86_400_000, -3_000])
      if (dt >= 0 || !options.monotonic) clock.t += dt
      continue
    } else continue
    n++
    try {
      expect(b).toEqual(a)
    } catch {
      return `seed ${seed}, step ${step} (${kind}, ${n} calls in): memory ${JSON.stringify(a)} vs ${target} ${JSON.stringify(b)}; options ${JSON.stringify(options)}`
    }
  }
  return null
}

describe.each(['redis', 'cluster'] as const)('Quota: MemoryStore and %s decide alike', (target) => {
  it('on random sequences of every operation, with clock jumps and repeated hold ids', async () => {
    const only = process.env.QUOTA_SEED
    const seeds = only ? [Number(only)] : Array.from({ length: target === 'redis' ? 40 : 12 }, (_, i) => 1_000 + i)
    for (const seed of seeds) {
      const diff = await runSequence(seed, target, 120)
      expect(diff).toBeNull()
    }
  }, 120_000)
})
