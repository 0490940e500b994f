// ProviderLimiter: the per-provider counter (engine/provider_limit.rs) against provider.lua —
// tryConsume of 0, some or all points, run, refills at the period's end.
import { ProviderLimiter } from '../../lib/index.js'
import { differential, outcome, sharedStats, steps } from './harness.js'

differential('ProviderLimiter', __filename, { base: 18_600 }, async ({ r, clock, stores, check, note }) => {
  // Periods of at least 5 s: Redis also drops a counter by its own (real) clock.
  const providers = {
    openai: { points: r.pick([1, 2, 5, 50]), duration: r.pick([5, 60, 7.5]), keyPrefix: `${stores.prefix}openai` },
    'anthropic:{x}': { points: r.pick([1, 3, 10_000]), duration: r.pick([60, 86_400]), keyPrefix: `${stores.prefix}anthropic` },
  }
  note(providers)
  clock.lifetimes = Object.values(providers).map((p) => p.duration * 1000)
  const a = new ProviderLimiter(stores.memory, { providers })
  const b = new ProviderLimiter(stores.redis, { providers })
  const names = [...Object.keys(providers), 'unknown']
  const scopes = ['global', 'tenant-1', 'ü:{y}']
  await steps(r, clock, 40 + r.int(80), ['tryConsume', 'tryConsume', 'tryConsume', 'tryConsume', 'run', 'jump', 'jump'] as const, async (kind, at) => {
    const provider = r.chance(0.95) ? r.pick(names.slice(0, 2)) : 'unknown'
    const scope = r.pick(scopes)
    if (kind === 'tryConsume') {
      const points = r.pick([0, 1, 1, 1, 2, 3, 49, 50, 51, -1, 1.5])
      check(`tryConsume(${provider}, ${scope}, ${points})${at}`, await outcome(clock, () => a.tryConsume(provider, scope, points)), await outcome(clock, () => b.tryConsume(provider, scope, points)))
    } else {
      // maxWaitMs 0: one try, no wait on the real clock.
      const run = (x: ProviderLimiter) => x.run(provider, () => 'ran', { scope, maxWaitMs: 0 })
      check(`run(${provider}, ${scope})${at}`, await outcome(clock, () => run(a)), await outcome(clock, () => run(b)))
    }
  })
  for (const provider of names.slice(0, 2)) {
    for (const scope of scopes) check(`end tryConsume(${provider}, ${scope}, 0)`, await outcome(clock, () => a.tryConsume(provider, scope, 0)), await outcome(clock, () => b.tryConsume(provider, scope, 0)))
  }
  check('end health', (await a.health()).rateLimiting.local, (await b.health()).rateLimiting.local)
  check('end stats', sharedStats(a.stats()), sharedStats(b.stats()))
})
