// TokenBudget: the budget engine (engine/token_budget.rs) against budget.lua.
import { TokenBudget } from '../../lib/index.js'
import { differential, outcome, sharedStats, steps } from './harness.js'

differential('TokenBudget', __filename, { base: 18_200 }, async ({ r, clock, stores, check, note }) => {
  // Periods of at least 5 s: Redis also drops a bucket by its own (real) clock once it is over.
  const options = {
    maxTokens: r.pick([1, 10, 100, 1_000, 1_000_000]),
    periodSeconds: r.pick([5, 60, 3_600, 86_400, 2.5 * 60]),
    holdTtlSeconds: r.pick([1, 30, 600, 90_000]),
    prefix: stores.prefix,
  }
  note(options)
  clock.lifetimes = [options.periodSeconds * 1000, options.holdTtlSeconds * 1000]
  const a = new TokenBudget(stores.memory, options)
  const b = new TokenBudget(stores.redis, options)
  const buckets = ['u1', 'org:{7}', 'ü']
  const amount = () =>
    r.pick([0, 0, 1, 3, options.maxTokens - 1, options.maxTokens, options.maxTokens + 1, Math.ceil(options.maxTokens / 3), -1, 2.5, { prompt_tokens: 3, completion_tokens: 4 }])
  // Pairs of holds, the memory one and the Redis one, made by the same step.
  const holds: Array<[any, any]> = []
  await steps(r, clock, 40 + r.int(80), ['check', 'record', 'reserve', 'reserve', 'reserve', 'settle', 'settle', 'release', 'jump', 'jump'] as const, async (kind, at) => {
    const bucket = r.pick(buckets)
    if (kind === 'check') {
      check(`check(${bucket})${at}`, await outcome(clock, () => a.check(bucket)), await outcome(clock, () => b.check(bucket)))
    } else if (kind === 'record' || kind === 'reserve') {
      const n = amount()
      const x: any = await outcome(clock, () => a[kind](bucket, n as number))
      const y: any = await outcome(clock, () => b[kind](bucket, n as number))
      check(`${kind}(${bucket}, ${JSON.stringify(n)})${at}`, x, y)
      if (x.ok?.hold && y.ok?.hold) holds.push([x.ok.hold, y.ok.hold])
    } else {
      // A hold of either side, or one neither made (settled or released twice, or foreign).
      const [ha, hb] = holds.length > 0 && r.chance(0.9) ? r.pick(holds) : [{ bucket, id: '1-1', tokens: 1, expiresAt: 0 }, { bucket, id: '1-1', tokens: 1, expiresAt: 0 }]
      if (kind === 'settle') {
        const n = amount()
        check(`settle(${ha.bucket}/${ha.id}, ${JSON.stringify(n)})${at}`, await outcome(clock, () => a.settle(ha, n)), await outcome(clock, () => b.settle(hb, n)))
      } else {
        check(`release(${ha.bucket}/${ha.id})${at}`, await outcome(clock, () => a.release(ha)), await outcome(clock, () => b.release(hb)))
      }
    }
  })
  for (const bucket of buckets) check(`end check(${bucket})`, await outcome(clock, () => a.check(bucket)), await outcome(clock, () => b.check(bucket)))
  check('end stats', sharedStats(a.stats()), sharedStats(b.stats()))
})
