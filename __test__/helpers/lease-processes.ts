// The shared part of the leased-limit process tests (lease-processes, guard-lease-processes):
// six worker processes at uneven rates on one leased Redis limit, and what every such run must
// show — never above the limit in any window, ≥ 95 % of it admitted under saturation, the
// slowest process served, most decisions answered in-process.
import { execFile, spawn } from 'node:child_process'
import { promisify } from 'node:util'
import { expect } from 'vitest'
import { redisUrl } from './stores.js'

const run = promisify(execFile)

export type Run = { admitted: number[]; refused: number; calls: number }

/** The most decisions in any window of `windowMs` (a decision at t counts while now < t + W). */
export function busiestWindow(times: number[], windowMs: number): number {
  const t = [...times].sort((a, b) => a - b)
  let most = 0
  let lo = 0
  for (let hi = 0; hi < t.length; hi++) {
    while (t[hi] - t[lo] >= windowMs) lo++
    most = Math.max(most, hi - lo + 1)
  }
  return most
}

/**
 * Runs `worker run <redis> <prefix> <max> <windowMs> <rate> <durationMs>` in six processes at
 * uneven rates (per second: two slow, two near their share, two — rate 0 — as fast as they
 * can), checks what every leased limit must show, and returns each process's run.
 */
export async function sixUnevenProcesses(worker: string, prefix: string, max = 200, windowMs = 1000, durationMs = 4000): Promise<Run[]> {
  const rates = [20, 60, 100, 150, 0, 0]
  const outs = await Promise.all(
    rates.map(async (rate) => {
      const { stdout } = await run(process.execPath, [worker, 'run', redisUrl(), prefix, String(max), String(windowMs), String(rate), String(durationMs)], { timeout: 15_000 })
      return JSON.parse(stdout) as Run
    }),
  )
  const all = outs.flatMap((o) => o.admitted).sort((a, b) => a - b)
  expect(busiestWindow(all, windowMs)).toBeLessThanOrEqual(max)
  // Saturation: over the whole windows after the first, at least 95 % of the limit.
  const from = all[0] + windowMs
  const windows = Math.floor((all[all.length - 1] - from) / windowMs)
  expect(windows).toBeGreaterThanOrEqual(2)
  const steady = all.filter((t) => t >= from && t < from + windows * windowMs).length
  expect(steady).toBeGreaterThanOrEqual(0.95 * max * windows)
  // The slowest (20/s, well under its max-min share) got at least half of what it asked for.
  expect(outs[0].admitted.length).toBeGreaterThanOrEqual(0.5 * 20 * (durationMs / 1000))
  for (const o of outs) expect(o.admitted.length).toBeGreaterThan(0)
  // Most decisions were answered in-process.
  const decisions = outs.reduce((n, o) => n + o.admitted.length + o.refused, 0)
  const calls = outs.reduce((n, o) => n + o.calls, 0)
  expect(calls).toBeLessThan(decisions / 5)
  return outs
}

/**
 * Starts `worker hold <redis> <prefix> <max> <windowMs>`, reads the units its lease holds (the
 * worker prints `<anything> <units> <allowed>` once it holds one), SIGKILLs it and waits for
 * it to be gone. Returns the units it held and when it was killed.
 */
export async function killedHolder(worker: string, prefix: string, max: number, windowMs: number): Promise<{ held: number; killedAt: number }> {
  const child = spawn(process.execPath, [worker, 'hold', redisUrl(), prefix, String(max), String(windowMs)], { stdio: ['ignore', 'pipe', 'inherit'] })
  const line: string = await new Promise((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (d) => {
      out += d
      if (out.includes('\n')) resolve(out)
    })
    child.on('exit', () => reject(new Error(`worker exited: ${out}`)))
  })
  const [, units, allowed] = line.trim().split(' ')
  expect(allowed).toBe('true')
  const held = Number(units)
  expect(held).toBeGreaterThan(1)
  const exited = new Promise((resolve) => child.on('exit', resolve))
  child.kill('SIGKILL')
  await exited
  return { held, killedAt: Date.now() }
}
