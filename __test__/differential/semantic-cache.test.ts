// SemanticCache: the in-process index and entries (engine/semantic) against the semantic_*.lua
// scripts and the per-process index synced from Redis's change log — set, exact and similar
// hits, scopes, eviction past maxEntries, delete, reportFalseHit, clear, around expiry. The
// embedder is deterministic (hashed trigrams), so similarities are exact on both sides.
import { SemanticCache } from '../../lib/index.js'
import { ngramEmbedder } from '../helpers/embedder.js'
import { differential, outcome, sharedStats, steps } from './harness.js'

const QUESTIONS = [
  'How do I enable two-factor authentication on my account?',
  'How do I disable two-factor authentication on my account?',
  'How can I enable two factor authentication for my account?',
  'What is Node.js?',
  'What is NodeJS?',
  'Show me the top 5 results',
  'Show me the top 10 results',
  'Can you explain how Node.js handles the event loop?',
  'Can you explain how NodeJS handles the event loop?',
]

differential('SemanticCache', __filename, { base: 18_700, count: 20, clusterCount: 4 }, async ({ r, clock, stores, check, note }) => {
  // TTLs of at least 5 s: Redis also drops an entry by its own (real) clock.
  const options = {
    threshold: r.pick([0.5, 0.8, 0.9, 0.95, 1]),
    ttl: r.pick([5, 60, 3_600, 86_400]),
    maxEntries: r.pick([2, 3, 5, 10_000]),
    prefix: stores.prefix,
    ...(r.chance(0.3) ? { approximateFrom: 2 } : {}),
    ...(r.chance(0.3) ? { scope: 'tenant-a' } : {}),
  }
  note(options)
  clock.lifetimes = [options.ttl * 1000]
  const a = new SemanticCache(stores.memory, { ...options, embed: ngramEmbedder(64).embed })
  const b = new SemanticCache(stores.redis, { ...options, embed: ngramEmbedder(64).embed })
  const system = ['You are a helpful assistant.', 'You are terse.']
  const request = () => {
    const messages: any[] = [{ role: 'system', content: r.chance(0.8) ? system[0] : system[1] }, { role: 'user', content: r.pick(QUESTIONS) }]
    if (r.chance(0.1)) messages.pop() // no user message: exact matches only
    return { model: r.chance(0.85) ? 'gpt-4o' : 'claude-sonnet-4', messages, options: r.chance(0.2) ? { scope: r.pick(['tenant-a', 'tenant-b']) } : undefined }
  }
  // A hit's similarity is a float computed on each side (the same vectors, the same order of
  // sums): compared to 1e-9, not bit for bit.
  const shape = (x: any) => (x?.ok?.hit ? { ...x, ok: { ...x.ok, similarity: Math.round(x.ok.similarity * 1e9) } } : x)
  const hits: Array<[string, string]> = []
  const counters = async (c: SemanticCache) => {
    const s = await c.stats()
    return { ...sharedStats(s), entries: s.entries, hits: s.hits, exactHits: s.exactHits, semanticHits: s.semanticHits, misses: s.misses, falseHits: s.falseHits }
  }
  await steps(r, clock, 30 + r.int(60), ['get', 'get', 'get', 'get', 'set', 'set', 'set', 'delete', 'reportFalseHit', 'clear', 'stats', 'jump'] as const, async (kind, at) => {
    if (kind === 'clear' && r.chance(0.7)) return // rarer than the rest
    if (kind === 'clear') {
      check(`clear()${at}`, await outcome(clock, () => a.clear()), await outcome(clock, () => b.clear()))
    } else if (kind === 'stats') {
      check(`stats()${at}`, await outcome(clock, () => counters(a)), await outcome(clock, () => counters(b)))
    } else if (kind === 'reportFalseHit') {
      const key = hits.length > 0 ? r.pick(hits) : ['nope', 'nope']
      check(`reportFalseHit(${key[0].slice(0, 8)})${at}`, await outcome(clock, () => a.reportFalseHit(key[0])), await outcome(clock, () => b.reportFalseHit(key[1])))
    } else {
      const q = request()
      const label = `${kind}(${q.model}, ${JSON.stringify(q.messages.map((m) => m.content))}, ${JSON.stringify(q.options)})${at}`
      if (kind === 'set') {
        const v = r.pick([{ answer: QUESTIONS.indexOf(q.messages[1]?.content) }, 'text', null])
        check(label, await outcome(clock, () => a.set(q.model, q.messages, v, q.options)), await outcome(clock, () => b.set(q.model, q.messages, v, q.options)))
      } else {
        const x: any = await outcome(clock, () => a[kind](q.model, q.messages, q.options))
        const y: any = await outcome(clock, () => b[kind](q.model, q.messages, q.options))
        check(label, shape(x), shape(y))
        if (x.ok?.hit && y.ok?.hit) hits.push([x.ok.key, y.ok.key])
      }
    }
  })
  check('end stats', await outcome(clock, () => counters(a)), await outcome(clock, () => counters(b)))
})
