// Leased limits across real processes (docs/leases.md): the limit stays exact in every window
// while each process answers most decisions in-process, and a killed process's lease ends on
// its own.
import { execFile } from 'node:child_process'
import path from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { RateLimiter, RedisStore } from '../lib/index.js'
import { killedHolder, sixUnevenProcesses } from './helpers/lease-processes.js'
import { redisUrl } from './helpers/stores.js'

const run = promisify(execFile)
const worker = path.join(__dirname, 'helpers', 'lease-worker.cjs')

describe('leased RateLimiter: 6 processes on one Redis limit', () => {
  it('admits at most the limit in every window, and at least 95 % of it under saturation', async () => {
    const outs = await sixUnevenProcesses(worker, `t:lease-procs:${Date.now()}:`)
    // The busiest ask all the time, and got the most.
    expect(Math.max(outs[4].admitted.length, outs[5].admitted.length)).toBe(Math.max(...outs.map((o) => o.admitted.length)))
  }, 20_000)

  it('a process that ends without close() gives its lease back before it exits, and exits by itself', async () => {
    const prefix = `t:lease-exit:${Date.now()}:`
    const max = 100
    const { stdout } = await run(process.execPath, [worker, 'exit', redisUrl(), prefix, String(max), '10000'], { timeout: 10_000 })
    const [units, allowed] = stdout.split(' ')
    expect(allowed).toBe('true')
    expect(Number(units)).toBeGreaterThan(1)
    // Only the one request it used still counts: the rest of its lease is free.
    const store = new RedisStore(redisUrl())
    const rl = new RateLimiter(store, { maxRequests: max, windowSeconds: 10, prefix, lease: true })
    try {
      let admitted = 0
      while ((await rl.consume('shared')).allowed) admitted++
      expect(admitted).toBe(max - 1)
    } finally {
      await rl.close()
      await store.close()
    }
  })

  it("a SIGKILLed process's lease ends on its own: its capacity is back within the lease time after the window", async () => {
    const prefix = `t:lease-kill:${Date.now()}:`
    const max = 100
    const windowMs = 1000
    const { held, killedAt } = await killedHolder(worker, prefix, max, windowMs)

    const store = new RedisStore(redisUrl())
    const rl = new RateLimiter(store, { maxRequests: max, windowSeconds: windowMs / 1000, prefix, lease: true })
    try {
      let admitted = 0
      // At once: at most what the dead process did not lease (its lease still counts, and so,
      // until its want expires two lease times after it asked, does its fair share).
      while ((await rl.consume('shared')).allowed) admitted++
      expect(admitted).toBeLessThanOrEqual(max - held)
      // Its lease ends at most one lease time after the kill, and its units stop counting one
      // window after that; then every unit it did not use is free again.
      const leaseMs = rl.lease!.seconds * 1000
      const deadline = killedAt + leaseMs + windowMs + 300
      while (admitted < max - 1 && Date.now() < deadline) {
        if ((await rl.consume('shared')).allowed) admitted++
        else await new Promise((r) => setTimeout(r, 5))
      }
      expect(admitted).toBeGreaterThanOrEqual(max - 1)
    } finally {
      await rl.close()
      await store.close()
    }
  }, 10_000)
})
