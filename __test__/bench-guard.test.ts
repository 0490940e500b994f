// `npm run bench -- guard` runs and prints its rows (tiny sizes; speed is never asserted here:
// the figures depend on the machine).
import { execFile } from 'node:child_process'
import path from 'node:path'
import { promisify } from 'node:util'
import { expect, it } from 'vitest'

const run = promisify(execFile)
const root = path.join(__dirname, '..')

it('the guard bench prints every contender for every size, in-process and on Redis', async () => {
  const { stdout } = await run(process.execPath, [path.join(root, 'benchmark', 'bench.js'), 'guard'], {
    timeout: 110_000,
    // REDIS_URL empty: the bench starts a redis-server of its own, so MONITOR sees only its calls.
    env: { ...process.env, REDIS_URL: '', GUARD_BENCH_N: '60', GUARD_BENCH_ROUNDS: '1', GUARD_BENCH_USERS: '3,40', GUARD_BENCH_ENTRIES: '5,50' },
  })
  const rows = stdout.split('\n')
  for (const size of ['3 × 5', '3 × 50', '40 × 5', '40 × 50']) {
    const at = rows.findIndex((r) => r.startsWith(size))
    expect(at, `${size} row`).toBeGreaterThan(-1)
    // the guard, the hand-built composition and the union, each with its six figures
    const figures = /([\d.,]+) µs +([\d.,]+) µs +([\d.,]+) ops\/s +([\d.]+) +([\d.]+) +([\d.,]+) µs$/
    expect(rows[at]).toContain('tollgate Guard, 5 limits')
    expect(rows[at + 1]).toContain('hand-built from 5 tollgate classes')
    expect(rows[at + 2]).toContain('RateLimiterUnion × 5 (requests only)')
    const trips = rows.slice(at, at + 3).map((r) => {
      const m = figures.exec(r)
      expect(m, r).not.toBeNull()
      return Number(m![4])
    })
    // round trips per call are counts, not timings: one script call to acquire and one to
    // settle; five acquire calls and four settles by hand; five limiters in the union
    expect(trips).toEqual([2, 9, 5])
  }
  expect(stdout).toMatch(/commands sent per call on Redis \(MONITOR\):\n +tollgate Guard, 5 limits +2\.00 EVALSHA\n/)
  expect(stdout).toMatch(/3 × 5 +in-process [\d.]+× faster; Redis 1 caller [\d.]+× faster; 256 callers [\d.]+× the throughput \(target ≥ 3×\); round trips 2\.00 vs 9\.00/)
  expect(stdout).toContain('vs RateLimiterUnion: in-process')
  expect(stdout).toMatch(/in-process guard: [\d.]+ µs per acquire \+ settle at worst/)
}, 120_000)
