// ResponseCache: the memory store's entries against put.lua and cache_get.lua — set, get and
// invalidate around expiry.
import { ResponseCache } from '../../lib/index.js'
import { differential, outcome, sharedStats, steps } from './harness.js'

differential('ResponseCache', __filename, { base: 18_500 }, async ({ r, clock, stores, check, note }) => {
  // TTLs of at least 5 s: Redis also drops an entry by its own (real) clock.
  const options = { ttl: r.pick([5, 60, 3_600, 9.5]), prefix: stores.prefix }
  note(options)
  clock.lifetimes = [options.ttl * 1000]
  const a = new ResponseCache(stores.memory, options)
  const b = new ResponseCache(stores.redis, options)
  const requests: Array<[string, any[], Record<string, unknown> | undefined]> = [
    ['gpt-4o', [{ role: 'user', content: 'Hi' }], undefined],
    ['gpt-4o', [{ role: 'user', content: 'Hi' }], { temperature: 0 }],
    ['claude-sonnet-4', [{ role: 'user', content: 'é😀' }], { max_tokens: 10, tools: [] }],
  ]
  const response = () => r.pick([{ choices: [{ message: { content: 'Hello' } }] }, 'text', 0, false, [], null, { big: 'y'.repeat(2_000) }])
  await steps(r, clock, 40 + r.int(80), ['get', 'get', 'get', 'set', 'set', 'invalidate', 'jump', 'jump'] as const, async (kind, at) => {
    const n = r.int(requests.length)
    const [model, messages, params] = requests[n]
    if (kind === 'set') {
      const v = response()
      check(`set(#${n}, ${JSON.stringify(v).slice(0, 40)})${at}`, await outcome(clock, () => a.set(model, messages, v, params)), await outcome(clock, () => b.set(model, messages, v, params)))
    } else {
      check(`${kind}(#${n})${at}`, await outcome(clock, () => a[kind](model, messages, params)), await outcome(clock, () => b[kind](model, messages, params)))
    }
  })
  for (const [n, [model, messages, params]] of requests.entries()) {
    check(`end get(#${n})`, await outcome(clock, () => a.get(model, messages, params)), await outcome(clock, () => b.get(model, messages, params)))
  }
  const counters = (s: ReturnType<ResponseCache['stats']>) => ({ ...sharedStats(s), hits: s.hits, misses: s.misses, hitRate: s.hitRate })
  check('end stats', counters(a.stats()), counters(b.stats()))
})
