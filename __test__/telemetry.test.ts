// OpenTelemetry metrics of guarded calls: the GenAI semantic conventions' client metrics and
// tollgate's own, read back with the SDK's in-memory exporter; nothing loaded without the API.
import { execFile } from 'node:child_process'
import path from 'node:path'
import { promisify } from 'node:util'
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics'
import { describe, expect, it } from 'vitest'
import { Guard, MemoryStore } from '../lib/index.js'
import { Clock } from './helpers/stores.js'

const run = promisify(execFile)

async function collect(use: (g: Guard) => Promise<void>, extra: Record<string, unknown> = {}) {
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 })
  const meterProvider = new MeterProvider({ readers: [reader] })
  const clock = new Clock()
  const g = new Guard({
    store: new MemoryStore({ now: clock.now }),
    telemetry: { meterProvider, ...extra },
    limits: [
      { id: 'user-rpm', scope: (c: any) => c.user, requests: 2, per: '1m' },
      { id: 'org-usd', scope: 'acme', usd: 1, per: 'day' },
    ],
  })
  await use(g)
  await reader.forceFlush()
  const out: Record<string, { unit: string; points: [Record<string, unknown>, any][] }> = {}
  for (const rm of exporter.getMetrics()) {
    for (const sm of rm.scopeMetrics) {
      expect(sm.scope.name).toBe('tollgate')
      for (const m of sm.metrics) out[m.descriptor.name] = { unit: m.descriptor.unit, points: m.dataPoints.map((p: any) => [p.attributes, p.value]) }
    }
  }
  await meterProvider.shutdown()
  return out
}

const req = { model: 'claude-3-5-haiku-20241022', tokens: 10, maxTokens: 10 }

describe('OpenTelemetry metrics of a guard', () => {
  it('records token usage, duration and cost by the GenAI conventions, decisions by outcome and limit', async () => {
    const m = await collect(async (g) => {
      const a = await g.acquire({ user: 'u-secret' }, req)
      await a.settle({ inputTokens: 1_000, outputTokens: 200 })
      const b = await g.acquire({ user: 'u-secret' }, req)
      await b.cancel()
      await g.acquire({ user: 'u-secret' }, req)
      expect((await g.acquire({ user: 'u-secret' }, req)).limit).toBe('user-rpm')
    })
    const base = { 'gen_ai.operation.name': 'chat', 'gen_ai.provider.name': 'anthropic', 'gen_ai.request.model': req.model }
    expect(m['gen_ai.client.token.usage'].unit).toBe('{token}')
    expect(m['gen_ai.client.token.usage'].points).toEqual([
      [{ ...base, 'gen_ai.token.type': 'input' }, expect.objectContaining({ count: 1, sum: 1_000 })],
      [{ ...base, 'gen_ai.token.type': 'output' }, expect.objectContaining({ count: 1, sum: 200 })],
    ])
    expect(m['gen_ai.client.operation.duration'].unit).toBe('s')
    expect(m['gen_ai.client.operation.duration'].points.map(([a, v]) => [a, v.count])).toEqual([
      [base, 1],
      [{ ...base, 'error.type': 'cancelled' }, 1],
    ])
    // claude-3-5-haiku: $0.80 / 1M input, $4 / 1M output
    expect(m['tollgate.guard.cost']).toEqual({ unit: 'USD', points: [[base, expect.closeTo((1_000 * 0.8 + 200 * 4) / 1e6, 12)]] })
    expect(m['tollgate.guard.decisions'].points).toEqual([
      [{ 'tollgate.outcome': 'admitted', 'gen_ai.request.model': req.model }, 3],
      [{ 'tollgate.outcome': 'refused', 'gen_ai.request.model': req.model, 'tollgate.limit': 'user-rpm' }, 1],
    ])
    expect(m['tollgate.guard.limit.utilization'].points.map(([a, v]) => [a, v.count, v.max])).toEqual([
      [{ 'tollgate.limit': 'user-rpm' }, 3, 1],
      [{ 'tollgate.limit': 'org-usd' }, 3, expect.any(Number)],
    ])
    // No scope (user id) is ever an attribute.
    expect(JSON.stringify(m)).not.toContain('u-secret')
  })

  it('names providers with a function of the model when asked, and can be turned off', async () => {
    const m = await collect(
      async (g) => {
        await (await g.acquire({ user: 'u' }, req)).settle({ inputTokens: 1, outputTokens: 1 })
      },
      { provider: () => 'aws.bedrock' },
    )
    expect(m['gen_ai.client.token.usage'].points[0][0]['gen_ai.provider.name']).toBe('aws.bedrock')
    expect(() => new Guard({ limits: [], telemetry: { meterProvide: null } } as any)).toThrow(expect.objectContaining({ code: 'ERR_TOLLGATE_UNKNOWN_OPTION' }))
    const off = new MeterProvider()
    let asked = 0
    const spy = { getMeter: (...a: any[]) => (asked++, off.getMeter(...(a as [string]))) }
    new Guard({ limits: [], telemetry: false })
    new Guard({ limits: [], telemetry: { meterProvider: spy as any } })
    expect(asked).toBe(1)
  })

  it('through the global MeterProvider: nothing while it is the no-op, recorded once an SDK registers one', async () => {
    const { metrics } = await import('@opentelemetry/api')
    const g = new Guard({ store: new MemoryStore(), limits: [{ id: 'r', scope: 'x', requests: 100, per: '1m' }] })
    await (await g.acquire({}, req)).settle({ inputTokens: 5, outputTokens: 5 }) // no-op provider: dropped
    const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 })
    const meterProvider = new MeterProvider({ readers: [reader] })
    expect(metrics.setGlobalMeterProvider(meterProvider)).toBe(true)
    try {
      await (await g.acquire({}, req)).settle({ inputTokens: 7, outputTokens: 3 })
      await reader.forceFlush()
      const tokens = exporter
        .getMetrics()
        .flatMap((rm) => rm.scopeMetrics.flatMap((sm) => sm.metrics))
        .find((m) => m.descriptor.name === 'gen_ai.client.token.usage')!
      expect(tokens.dataPoints.map((p: any) => [p.attributes['gen_ai.token.type'], p.value.sum])).toEqual([
        ['input', 7],
        ['output', 3],
      ])
    } finally {
      metrics.disable()
      await meterProvider.shutdown()
    }
  })

  it('importing tollgate never loads @opentelemetry/api, and a guard runs without it', async () => {
    const script = `
      const Module = require('node:module')
      const resolve = Module._resolveFilename
      Module._resolveFilename = function (request, ...rest) {
        if (request.startsWith('@opentelemetry/')) { const e = new Error('absent'); e.code = 'MODULE_NOT_FOUND'; throw e }
        return resolve.call(this, request, ...rest)
      }
      const t = require(${JSON.stringify(path.join(__dirname, '..', 'lib', 'index.js'))})
      const loaded = () => Object.keys(require.cache).some((k) => k.includes('@opentelemetry'))
      const before = loaded()
      const g = new t.Guard({ limits: [{ id: 'r', scope: 'x', requests: 1, per: '1m' }] })
      g.acquire({}, { model: 'gpt-4o-mini', tokens: 1 }).then((d) => d.settle({ inputTokens: 1, outputTokens: 1 })).then(() => {
        process.stdout.write(JSON.stringify({ before, after: loaded(), ok: true }))
      })`
    const { stdout } = await run(process.execPath, ['-e', script], { timeout: 20_000 })
    expect(JSON.parse(stdout)).toEqual({ before: false, after: false, ok: true })
    // And with the package present, importing tollgate alone still loads nothing.
    const { stdout: plain } = await run(process.execPath, ['-e', `require(${JSON.stringify(path.join(__dirname, '..', 'lib', 'index.js'))}); process.stdout.write(String(Object.keys(require.cache).some((k) => k.includes('@opentelemetry'))))`])
    expect(plain).toBe('false')
  })
})
