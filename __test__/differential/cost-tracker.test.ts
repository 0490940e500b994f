// CostTracker: the spend ledger (engine/spend.rs) against spend.lua — spend, holds, tags and
// alerts per UTC day and month, across midnight and a month's end, and the history per day and
// per hour (by model and by tag) that the same calls write.
import { CostTracker } from '../../lib/index.js'
import { JUMPS, differential, outcome, sharedStats, steps } from './harness.js'

const DAY = 86_400_000
const HOUR = 3_600_000

differential('CostTracker', __filename, { base: 18_300 }, async ({ r, clock, stores, check, note }) => {
  const options = {
    dailyBudget: r.pick([null, 0.5, 1, 5]),
    monthlyBudget: r.pick([null, 2, 10, 1_000]),
    alertThresholds: r.pick([[], [0.5], [0.5, 0.8, 1]]),
    holdTtlSeconds: r.pick([1, 60, 600, 7 * 86_400]),
    historyDays: r.pick([1, 2, 35]),
    prefix: stores.prefix,
  }
  note(options)
  // A month's ledger is kept until a day after it ends (a midnight after the first one), a
  // day's `historyDays` after it ends, an hour's 48 h after it ends, or until their last hold
  // expires: after the first midnight + a day, any hour's end may drop a key.
  clock.lifetimes = [options.holdTtlSeconds * 1000]
  const firstKept = (Math.floor(clock.t / DAY) + 2) * DAY
  clock.boundaries = (from, to) => to >= firstKept && Math.floor(to / HOUR) > Math.floor(Math.max(from, firstKept - 1) / HOUR)
  const alerts: { a: unknown[]; b: unknown[] } = { a: [], b: [] }
  const a = new CostTracker(stores.memory, { ...options, onAlert: (_m, x) => alerts.a.push(x) })
  const b = new CostTracker(stores.redis, { ...options, onAlert: (_m, x) => alerts.b.push(x) })
  const usd = () => r.pick([0, 0, 1e-9, 1e-10, 0.001, 0.1, 0.1, 0.25, 0.25, 0.5, 0.5, 1, 1.000000001, 2, 5, -1, 3e9])
  const tags = () => r.pick([undefined, { feature: 'chat' }, { feature: 'search', user: 7 }, { ok: true, gone: null }])
  const model = () => r.pick(['gpt-4o', 'gpt-4o', 'gpt-4o-mini', 'gpt-4o-mini', 'claude-sonnet-4', 'no-such-model'])
  const usage = () => r.pick([{ inputTokens: 1_000, outputTokens: 200 }, { inputTokens: 0, outputTokens: 0 }, { prompt_tokens: 50_000, completion_tokens: 9_000 }])
  const holds: Array<[any, any]> = []
  await steps(r, clock, 40 + r.int(80), ['recordUsage', 'recordUsage4', 'recordCost', 'reserve', 'reserve', 'reserve', 'settle', 'settle', 'release', 'isOverBudget', 'totals', 'history', 'jump', 'jump', 'jump'] as const, async (kind, at) => {
    let call: (t: CostTracker, side: 0 | 1) => unknown
    let label: string
    if (kind === 'recordUsage') {
      const [m, u, t] = [model(), usage(), tags()]
      label = `recordUsage(${m}, ${JSON.stringify(u)}, ${JSON.stringify(t)})`
      call = (x) => x.recordUsage(m, u, { tags: t })
    } else if (kind === 'recordUsage4') {
      const [m, i, o, t] = [model(), r.pick([0, 1, 1_000, 123_456]), r.pick([0, 7, 40_000]), tags()]
      label = `recordUsage(${m}, ${i}, ${o}, ${JSON.stringify(t)})`
      call = (x) => x.recordUsage(m, i, o, t)
    } else if (kind === 'recordCost') {
      const [n, t] = [usd(), tags()]
      label = `recordCost(${n}, ${JSON.stringify(t)})`
      call = (x) => x.recordCost(n, { tags: t })
    } else if (kind === 'reserve') {
      const [n, m, t] = [usd(), r.chance(0.5) ? model() : undefined, tags()]
      label = `reserve(${n}, ${m}, ${JSON.stringify(t)})`
      call = (x) => x.reserve(n, { model: m, tags: t })
    } else if (kind === 'settle' || kind === 'release') {
      const pair = holds.length > 0 && r.chance(0.9) ? r.pick(holds) : null
      const foreign = { id: '2026-01-31#99', estimateUsd: 1, expiresAt: 0 }
      const hold = (side: 0 | 1) => (pair ? pair[side] : foreign)
      label = `${kind}(${hold(0).id})`
      if (kind === 'release') call = (x, side) => x.release(hold(side))
      else if (r.chance(0.6)) {
        const n = usd()
        label = `settle(${hold(0).id}, ${n})`
        call = (x, side) => x.settle(hold(side), n)
      } else {
        const [u, m] = [usage(), r.chance(0.5) ? model() : undefined]
        label = `settle(${hold(0).id}, ${JSON.stringify(u)}, ${m})`
        call = (x, side) => x.settle(hold(side), u, m === undefined ? undefined : { model: m })
      }
    } else if (kind === 'history') {
      const h = { days: r.pick([0, 1, 3, 40, undefined]), hours: r.pick([0, 1, 5, 48, undefined]) }
      label = `history(${JSON.stringify(h)})`
      call = (x) => x.history(h)
    } else if (kind === 'isOverBudget') {
      label = 'isOverBudget()'
      call = (x) => x.isOverBudget()
    } else {
      const withTags = r.chance(0.5)
      label = `totals(${withTags})`
      call = (x) => x.totals({ tags: withTags } as { tags: true })
    }
    const x: any = await outcome(clock, () => call(a, 0))
    const y: any = await outcome(clock, () => call(b, 1))
    check(label + at, x, y)
    check(`${label}${at} alerts`, alerts.a.splice(0), alerts.b.splice(0))
    if (x.ok?.hold && y.ok?.hold) holds.push([x.ok.hold, y.ok.hold])
  }, [...JUMPS, 31 * DAY])
  check('end totals', await outcome(clock, () => a.totals()), await outcome(clock, () => b.totals()))
  check('end history', await outcome(clock, () => a.history({ days: 40, hours: 48 })), await outcome(clock, () => b.history({ days: 40, hours: 48 })))
  check('end isOverBudget', await outcome(clock, () => a.isOverBudget()), await outcome(clock, () => b.isOverBudget()))
  check('end stats', sharedStats(a.stats()), sharedStats(b.stats()))
})
