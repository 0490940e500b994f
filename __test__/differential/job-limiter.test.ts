// The job limiter (createLLMRateLimiter): its in-process limits (JobLimitsCore, engine/jobs)
// against the Redis backend (jobs.lua), on the decisions an injected clock makes
// deterministic — every job waits 0 ms for a model, so a job is granted, passed to the next
// model or refused at once — with jobs that finish at, over and under their estimate, are
// rejected (delegated or not) or throw, jobs held in flight, and the minute and day windows
// (fixed or sliding) rolling over as the clock jumps across midnight.
import { createLLMRateLimiter, createRedisBackend, type LLMRateLimiterInstance } from '../../lib/index.js'
import { JUMPS, differential, outcome } from './harness.js'

const DAY = 86_400_000

differential('JobLimiter', __filename, { base: 18_800, count: 20, clusterCount: 4 }, async ({ r, clock, stores, check, note }) => {
  const limits = () => ({
    ...(r.chance(0.7) ? { requestsPerMinute: r.pick([1, 2, 5]) } : {}),
    ...(r.chance(0.7) ? { tokensPerMinute: r.pick([100, 1_000, 5_000]) } : {}),
    ...(r.chance(0.4) ? { requestsPerDay: r.pick([3, 10]) } : {}),
    ...(r.chance(0.4) ? { tokensPerDay: r.pick([2_000, 20_000]) } : {}),
    ...(r.chance(0.5) ? { maxConcurrentRequests: r.pick([1, 2]) } : {}),
  })
  const models = { 'gpt-4o': limits(), 'gpt-4o-mini': limits() }
  const order = r.chance(0.5) ? ['gpt-4o', 'gpt-4o-mini'] : ['gpt-4o-mini', 'gpt-4o']
  const windows = r.pick(['fixed', 'sliding'] as const)
  const noWait = { 'gpt-4o': 0, 'gpt-4o-mini': 0 }
  const types = {
    chat: { estimatedUsedTokens: r.pick([0, 100, 400]), estimatedNumberOfRequests: 1, maxWaitMS: noWait },
    batch: { estimatedUsedTokens: r.pick([1_000, 3_000]), estimatedNumberOfRequests: r.pick([1, 2]), maxWaitMS: noWait, ratio: { initialValue: 0.3 } },
  }
  note({ models, order, windows, types })
  const config = {
    models,
    escalationOrder: order,
    resourceEstimationsPerJob: types,
    windows,
    now: clock.now,
    // No timer may decide anything: ratios move only with releases, and one heartbeat (at start).
    ratioAdjustmentConfig: { adjustmentIntervalMs: 0 },
  }
  const a = createLLMRateLimiter({ ...config, instanceId: 'local' })
  const backend = createRedisBackend({ client: stores.redis, keyPrefix: stores.prefix, heartbeatIntervalMs: 3_600_000, instanceTimeoutMs: DAY })
  const b = createLLMRateLimiter({ ...config, backend, instanceId: 'redis' })
  await b.start()
  const t0 = clock.t
  // Held jobs: started, in flight until released.
  const held: Array<{ release: (side: 0 | 1) => void; done: [Promise<unknown>, Promise<unknown>]; label: string }> = []
  let n = 0
  const usage = (est: number, how: string) => {
    const tokens = how === 'over' ? est * 2 + 50 : how === 'under' ? Math.floor(est / 3) : est
    return { requestCount: 1, inputTokens: Math.ceil(tokens / 2), cachedTokens: 0, outputTokens: Math.floor(tokens / 2) }
  }
  // What each limiter shows. With a Redis backend, the model views (getAvailableModel,
  // hasCapacityForModel, getModelStats) are the counts of Redis's last reply, which names the
  // minute they were counted in, rolled as the engine rolls a fixed window (lib/jobs): exact
  // for fixed windows, a clock stepped back included. Sliding windows are shown as last seen
  // there (rolling them would take every bucket of the reply), so their model views are not
  // compared; the job-type views and the decisions always are.
  const modelViews = windows === 'fixed'
  const view = (x: LLMRateLimiterInstance) => ({
    types: Object.fromEntries(Object.keys(types).map((t) => [t, x.hasCapacityForJobType(t)])),
    jobTypes: Object.fromEntries(Object.entries(x.getJobTypeStats().jobTypes).map(([k, s]) => [k, { inFlight: s.inFlight, ratio: s.currentRatio }])),
    ...(!modelViews
      ? {}
      : {
          available: x.getAvailableModel(),
          capacity: Object.fromEntries(Object.keys(models).map((m) => [m, x.hasCapacityForModel(m)])),
          stats: Object.fromEntries(Object.keys(models).map((m) => [m, x.getModelStats(m)])),
        }),
  })
  const steps = 20 + r.int(50)
  for (let i = 0; i < steps; i++) {
    const kind = r.pick(['job', 'job', 'job', 'job', 'hold', 'finish', 'view', 'jump', 'jump'] as const)
    if (kind === 'jump') {
      // Within a day of the start: the Redis backend would otherwise drop this instance as
      // stale (its heartbeat is a day apart), which an in-process limiter has no notion of.
      const dt = r.pick(JUMPS)
      if (clock.t + dt - t0 < DAY - 120_000) clock.jump(dt)
      continue
    }
    const at = `@${clock.t - t0}`
    if (kind === 'view') {
      check(`view${at}`, await outcome(clock, () => view(a)), await outcome(clock, () => view(b)))
      continue
    }
    if (kind === 'finish') {
      if (held.length === 0) continue
      const h = held.splice(r.int(held.length), 1)[0]
      h.release(0)
      const x = await outcome(clock, () => h.done[0])
      h.release(1)
      const y = await outcome(clock, () => h.done[1])
      check(`finish ${h.label}${at}`, x, y)
      check(`after finish ${h.label}${at}`, view(a), view(b))
      continue
    }
    const type = r.pick(['chat', 'chat', 'batch'] as const)
    const est = types[type].estimatedUsedTokens
    const how = r.pick(['exact', 'over', 'under', 'under', 'reject', 'rejectStop', 'throw'])
    const jobId = `j${++n}`
    const label = `${kind} ${jobId}(${type}, ${how})`
    const contexts: [unknown[], unknown[]] = [[], []]
    const job = (side: 0 | 1, gate?: { reached: () => void; open: Promise<void> }) => async ({ modelId }: { modelId: string }, reject: (u: object, o?: object) => void) => {
      if (gate) {
        gate.reached()
        await gate.open
      }
      if (how === 'throw') throw new Error('provider failed')
      if (how === 'reject' || how === 'rejectStop') {
        reject(usage(est, 'under'), how === 'rejectStop' ? { delegate: false } : undefined)
        return { ...usage(est, 'under'), data: null }
      }
      return { ...usage(est, how), data: `${jobId} on ${modelId} (${side})` }
    }
    const queue = (x: LLMRateLimiterInstance, side: 0 | 1, gate?: { reached: () => void; open: Promise<void> }) =>
      x.queueJob({
        jobId,
        jobType: type,
        job: job(side, gate),
        onComplete: (_r, c) => contexts[side].push(c),
        onError: (_e, c) => contexts[side].push(c),
      })
    if (kind === 'job') {
      const x: any = await outcome(clock, () => queue(a, 0))
      const y: any = await outcome(clock, () => queue(b, 1))
      if (x.ok) x.ok.data = x.ok.data.replace(' (0)', '')
      if (y.ok) y.ok.data = y.ok.data.replace(' (1)', '')
      check(`${label}${at}`, x, y)
      check(`${label}${at} context`, contexts[0], contexts[1])
      check(`after ${label}${at}`, view(a), view(b))
    } else {
      // Start the job on both sides and let it wait at its gate, in flight.
      const gates: Array<() => void> = []
      const done = [] as unknown as [Promise<unknown>, Promise<unknown>]
      for (const [side, x] of [a, b].entries()) {
        let reached = () => {}
        const at = new Promise<void>((res) => (reached = res))
        const open = new Promise<void>((res) => gates.push(res))
        const p = queue(x, side as 0 | 1, { reached, open }).then(
          (v) => ({ ok: v.modelUsed }),
          (e) => ({ threw: e.name, code: e.code }),
        )
        done.push(p)
        // Until the job waits at its gate (granted), or was refused.
        await Promise.race([at, p])
      }
      const active = [a, b].map((x) => x.getActiveJobs().map((j) => ({ status: j.status, model: j.currentModelId })))
      check(`${label}${at} active`, active[0], active[1])
      held.push({ release: (side) => gates[side](), done, label })
    }
  }
  for (const h of held) {
    h.release(0)
    h.release(1)
    check(`end ${h.label}`, await h.done[0], await h.done[1])
  }
  check('end view', view(a), view(b))
  await a.stop()
  await b.stop()
})
