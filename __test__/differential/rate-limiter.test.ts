// RateLimiter: the sliding-window log (engine/sliding_window.rs) against rate_limit.lua.
import { RateLimiter } from '../../lib/index.js'
import { differential, outcome, sharedStats, steps } from './harness.js'

differential('RateLimiter', __filename, { base: 18_100 }, async ({ r, clock, stores, check, note }) => {
  // Windows of at least 5 s: Redis also drops a key by its own (real) clock after the window.
  const options = { maxRequests: r.pick([1, 2, 3, 5, 20]), windowSeconds: r.pick([5, 10, 60, 86_400, 7.5]), prefix: stores.prefix }
  const blockedKeyCache = r.chance(0.7)
  note({ ...options, blockedKeyCache })
  clock.lifetimes = [options.windowSeconds * 1000]
  const a = new RateLimiter(stores.memory, options)
  const b = new RateLimiter(stores.redis, { ...options, blockedKeyCache })
  const ids = ['openai', 'b', 'é:{x}']
  await steps(r, clock, 40 + r.int(80), ['check', 'record', 'consume', 'consume', 'consume', 'jump', 'jump'] as const, async (kind, at) => {
    const id = r.pick(ids)
    check(`${kind}(${id})${at}`, await outcome(clock, () => a[kind](id)), await outcome(clock, () => b[kind](id)))
  })
  for (const id of ids) check(`end check(${id})`, await outcome(clock, () => a.check(id)), await outcome(clock, () => b.check(id)))
  check('end stats', sharedStats(a.stats()), sharedStats(b.stats()))
})
