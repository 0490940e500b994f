// SessionStore: the session splice (engine/session.rs) against session.lua and put.lua —
// save, load, append (with and without a size cap), touch and destroy around expiry.
import { SessionStore } from '../../lib/index.js'
import { differential, outcome, sharedStats, steps } from './harness.js'

differential('SessionStore', __filename, { base: 18_400 }, async ({ r, clock, stores, check, note }) => {
  // TTLs of at least 5 s: Redis also drops a session by its own (real) clock.
  const options = { ttl: r.pick([5, 60, 1_800, 7.25]), prefix: stores.prefix, ...(r.chance(0.5) ? { maxBytes: r.pick([1, 40, 120, 400]) } : {}) }
  note(options)
  clock.lifetimes = [options.ttl * 1000]
  const a = new SessionStore(stores.memory, options)
  const b = new SessionStore(stores.redis, options)
  const ids = ['user-1', 's:{2}', 'ß']
  const message = () =>
    r.pick([{ role: 'user', content: 'Hello' }, { role: 'assistant', content: 'é😀 日本' }, 'plain text', 42, null, [], { content: '\ud800' }, { nested: { messages: [1] } }])
  const data = () =>
    r.pick([
      { messages: [] },
      { messages: [message()] },
      { messages: [message(), message()], user: 'u', n: 1 },
      { user: 'no messages' },
      { messages: 'not a list' },
      [1, 2, 3],
      'text',
      7,
      null,
      { messages: [], big: 'x'.repeat(300) },
    ])
  await steps(r, clock, 40 + r.int(80), ['save', 'load', 'load', 'append', 'append', 'append', 'touch', 'destroy', 'jump', 'jump'] as const, async (kind, at) => {
    const id = r.pick(ids)
    if (kind === 'save') {
      const d = data()
      check(`save(${id}, ${JSON.stringify(d)})${at}`, await outcome(clock, () => a.save(id, d)), await outcome(clock, () => b.save(id, d)))
    } else if (kind === 'append') {
      const ms = Array.from({ length: r.pick([0, 1, 1, 2, 3]) }, message)
      check(`append(${id}, ${JSON.stringify(ms)})${at}`, await outcome(clock, () => a.append(id, ...ms)), await outcome(clock, () => b.append(id, ...ms)))
    } else {
      check(`${kind}(${id})${at}`, await outcome(clock, () => a[kind](id)), await outcome(clock, () => b[kind](id)))
    }
  })
  for (const id of ids) check(`end load(${id})`, await outcome(clock, () => a.load(id)), await outcome(clock, () => b.load(id)))
  check('end stats', sharedStats(a.stats()), sharedStats(b.stats()))
})
