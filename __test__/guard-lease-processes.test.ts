// The guard's leased limits across real processes (docs/leases.md, docs/guard.md): one guard
// limit shared by many processes stays exact in every window while each answers most decisions
// in-process, and a killed process's lease ends on its own.
import { execFile } from 'node:child_process'
import path from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { Guard, RedisStore } from '../lib/index.js'
import { killedHolder, sixUnevenProcesses } from './helpers/lease-processes.js'
import { redisUrl } from './helpers/stores.js'

const run = promisify(execFile)
const worker = path.join(__dirname, 'helpers', 'guard-lease-worker.cjs')
const request = { model: 'gpt-4o-mini', tokens: 10, maxTokens: 10 }

describe('leased guard limit: 6 processes on one Redis limit', () => {
  it('admits at most the limit in every window, and at least 95 % of it under saturation', async () => {
    await sixUnevenProcesses(worker, `t:glease-procs:${Date.now()}:`)
  }, 20_000)

  it('a leased token limit: the tokens used in every window stay within it, settled below their estimates', async () => {
    const prefix = `t:glease-tokens:${Date.now()}:`
    const max = 4000
    const windowMs = 1000
    const durationMs = 3000
    const outs = await Promise.all(
      [0, 0, 0, 0].map(async (rate) => {
        const { stdout } = await run(process.execPath, [worker, 'tokens', redisUrl(), prefix, String(max), String(windowMs), String(rate), String(durationMs)], { timeout: 15_000 })
        return JSON.parse(stdout) as { admitted: [number, number][]; refused: number; calls: number }
      }),
    )
    const all = outs.flatMap((o) => o.admitted).sort((a, b) => a[0] - b[0])
    let most = 0
    let sum = 0
    for (let lo = 0, hi = 0; hi < all.length; hi++) {
      sum += all[hi][1]
      while (all[hi][0] - all[lo][0] >= windowMs) sum -= all[lo++][1]
      most = Math.max(most, sum)
    }
    expect(most).toBeLessThanOrEqual(max)
    // Saturated, and the refunds were used again: at least 95 % of the limit in whole windows.
    const from = all[0][0] + windowMs
    const windows = Math.floor((all[all.length - 1][0] - from) / windowMs)
    expect(windows).toBeGreaterThanOrEqual(1)
    const steady = all.filter(([t]) => t >= from && t < from + windows * windowMs).reduce((n, [, u]) => n + u, 0)
    expect(steady).toBeGreaterThanOrEqual(0.95 * max * windows)
    for (const o of outs) expect(o.refused).toBeGreaterThan(0)
  }, 20_000)

  it("a SIGKILLed process's lease ends on its own: its capacity is back within the lease time after the window", async () => {
    const prefix = `t:glease-kill:${Date.now()}:`
    const max = 100
    const windowMs = 1000
    const { held, killedAt } = await killedHolder(worker, prefix, max, windowMs)

    const store = new RedisStore(redisUrl())
    const g = new Guard({ store, prefix, limits: [{ id: 'rpw', scope: 'shared', requests: max, per: windowMs, lease: true }] })
    try {
      let admitted = 0
      // At once: at most what the dead process did not lease.
      while ((await g.acquire({}, request)).ok) admitted++
      expect(admitted).toBeLessThanOrEqual(max - held)
      // Its lease ends at most one lease time after the kill, and its units stop counting one
      // window after that; then every unit it did not use is free again.
      const leaseMs = g.leases.rpw!.seconds * 1000
      const deadline = killedAt + leaseMs + windowMs + 300
      while (admitted < max - 1 && Date.now() < deadline) {
        if ((await g.acquire({}, request)).ok) admitted++
        else await new Promise((r) => setTimeout(r, 5))
      }
      expect(admitted).toBeGreaterThanOrEqual(max - 1)
    } finally {
      await g.close()
      await store.close()
    }
  }, 10_000)
})
