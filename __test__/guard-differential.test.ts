// One truth for the Guard's meters: the same random sequences of acquire / settle / cancel /
// peek and clock jumps (forwards and back) run on a MemoryStore (engine/guard.rs) and on a real
// Redis and a 3-master Cluster (guard.lua), and every answer must be the same. A failing
// sequence prints its seed; `GUARD_SEED=<seed>` replays just that one.
import { afterAll, describe, expect, it } from 'vitest'
import { rng } from './helpers/prng.js'
import { clusterUrls, redisUrl } from './helpers/stores.js'
import { Guard, MemoryStore, RedisStore } from '../lib/index.js'

const opened: RedisStore[] = []
afterAll(async () => {
  await Promise.all(opened.map((s) => s.close()))
})

type Target = 'redis' | 'cluster'

/** A random policy: 1 to 4 limits of random measures, windows, periods and scopes. */
function policy(r: ReturnType<typeof rng>) {
  const n = 1 + r.int(4)
  const limits: any[] = []
  for (let i = 0; i < n; i++) {
    const measure = r.pick(['requests', 'tokens', 'inputTokens', 'outputTokens', 'usd', 'concurrent'] as const)
    const scope = r.pick([(c: any) => c.user, (c: any) => c.org, () => 'all', (c: any) => (c.user === 'u0' ? null : c.user)])
    const max = measure === 'usd' ? r.pick([0.0001, 0.001, 0.01]) : measure === 'concurrent' ? r.int(4) : measure === 'requests' ? 1 + r.int(6) : r.pick([200, 1_000, 5_000])
    const l: any = { id: `l${i}`, scope, [measure]: max }
    if (measure !== 'concurrent') {
      l.per = r.pick(['1s', '10s', '1m', 2_500, 'day', 'month'])
      if ((l.per === 'day' || l.per === 'month') && r.next() < 0.3) l.timeZone = r.pick(['Asia/Kolkata', 'America/New_York'])
    }
    limits.push(l)
  }
  return limits
}

async function runSequence(seed: number, target: Target, steps: number): Promise<string | null> {
  const r = rng(seed)
  // Starts near a UTC midnight and a month's end, so periods turn during the sequence.
  const clock = { t: Date.UTC(2026, 0, 31, 23, 59, 30) }
  const now = () => clock.t
  const limits = policy(r)
  const holdTtlMs = r.pick([2_000, 30_000, 600_000])
  const red = new RedisStore(target === 'redis' ? { url: redisUrl(), now } : { cluster: clusterUrls(), now, commandTimeoutMs: 5_000 })
  opened.push(red)
  const a = new Guard({ store: new MemoryStore({ now }), limits, holdTtlMs })
  const b = new Guard({ store: red, limits, holdTtlMs, prefix: `t:gdiff:${seed}:` })
  const open: [any, any][] = []
  const log: string[] = []
  const ctxs = [
    { user: 'u0', org: 'o0' },
    { user: 'u1', org: 'o0' },
    { user: 'u2', org: 'o1' },
  ]
  const same = (what: string, x: unknown, y: unknown) => {
    try {
      expect(y).toEqual(x)
      return null
    } catch {
      return `seed ${seed} (${target}) step ${log.length}: ${what} differs\nmemory: ${JSON.stringify(x)}\n${target}: ${JSON.stringify(y)}\nsteps:\n${log.join('\n')}`
    }
  }
  const shape = (d: any) => ({ ok: d.ok, limit: d.limit, retryAfterMs: d.retryAfterMs, remaining: d.remaining })
  for (let s = 0; s < steps; s++) {
    const op = r.next()
    if (op < 0.4) {
      const ctx = r.pick(ctxs)
      const req = { model: r.pick(['gpt-4o-mini', 'gpt-4o']), tokens: r.int(400), maxTokens: r.int(300) }
      log.push(`acquire ${JSON.stringify(ctx)} ${JSON.stringify(req)}`)
      const [x, y] = [await a.acquire(ctx, req), await b.acquire(ctx, req)]
      const diff = same('acquire', shape(x), shape(y))
      if (diff) return diff
      if (x.ok) open.push([x, y])
    } else if (op < 0.6 && open.length > 0) {
      const [x, y] = open.splice(r.int(open.length), 1)[0]
      const usage = { inputTokens: r.int(500), outputTokens: r.int(400) }
      log.push(`settle ${JSON.stringify(usage)}`)
      await Promise.all([x.settle(usage), y.settle(usage)])
    } else if (op < 0.7 && open.length > 0) {
      const [x, y] = open.splice(r.int(open.length), 1)[0]
      log.push('cancel')
      await Promise.all([x.cancel(), y.cancel()])
    } else if (op < 0.8) {
      const ctx = r.pick(ctxs)
      log.push(`peek ${JSON.stringify(ctx)}`)
      const diff = same('peek', await a.peek(ctx), await b.peek(ctx))
      if (diff) return diff
    } else {
      const jump = r.pick([1, 500, 1_000, 2_000, 30_000, 61_000, 3_600_000, 86_400_000, -700, -5_000])
      clock.t += jump
      log.push(`time ${jump > 0 ? '+' : ''}${jump}`)
    }
  }
  for (const ctx of ctxs) {
    const diff = same('final peek', await a.peek(ctx), await b.peek(ctx))
    if (diff) return diff
  }
  return null
}

const replay = process.env.GUARD_SEED ? Number(process.env.GUARD_SEED) : null

describe('Guard: memory and Redis answer alike', () => {
  for (const [target, runs, steps] of [
    ['redis', 40, 60],
    ['cluster', 12, 40],
  ] as const) {
    it(`${runs} random sequences on ${target}`, async () => {
      const seeds = replay === null ? Array.from({ length: runs }, (_, i) => 7_000 + i * 7919) : [replay]
      for (const seed of seeds) {
        const diff = await runSequence(seed, target, steps)
        expect(diff, diff ?? '').toBeNull()
      }
    }, 120_000)
  }
})
