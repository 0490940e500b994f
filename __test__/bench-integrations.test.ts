// `npm run bench -- integrations` in a tiny mode (a handful of calls): every row prints, with a
// number where a number belongs, and the Redis guard's round trips per call are counted. The
// timings themselves are not asserted (the benchmark prints ratios; a test cannot hold a machine
// to them).
import { execFile, spawn } from 'node:child_process'
import path from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

const run = promisify(execFile)
const root = path.join(__dirname, '..')

describe('benchmark: integrations', () => {
  it('prints every row of the OpenAI wrapper section', async () => {
    const { stdout } = await run(process.execPath, [path.join(root, 'benchmark', 'bench.js'), 'integrations'], {
      timeout: 30_000,
      // Its own redis-server (no REDIS_URL): it resets and reads INFO commandstats, which other
      // test files on the shared server would disturb and be disturbed by.
      env: { ...process.env, REDIS_URL: '', BENCH_INTEGRATIONS_CALLS: '5' },
    })
    expect(stdout).toContain('OpenAI wrapper (tollgate/openai) per chat.completions.create against a local fake server, one caller, 1 rounds × 5 calls of each')
    const num = String.raw`[\d,]+\.\d`
    for (const kind of ['non-streaming', 'streaming']) {
      expect(stdout).toMatch(new RegExp(String.raw`\n   bare openai SDK, ${kind} +${num} +— +—\n`))
      expect(stdout).toMatch(new RegExp(String.raw`\n   guarded, in-process, ${kind} +${num} +[+-]${num}% +0\n`))
      // One decision and one settlement: two script calls to Redis per guarded call, counted by
      // redis-server and by the guard alike.
      expect(stdout).toMatch(new RegExp(String.raw`\n   guarded, Redis, ${kind} +${num} +[+-]${num}% +2\.00\n`))
      expect(stdout).toMatch(new RegExp(String.raw`\n   Redis, ${kind}: 2\.00 script calls per call by the guard's stats\(\)\.redisCalls, \d+\.\d commands run inside them\n`))
      expect(stdout).toMatch(new RegExp(String.raw`\n   ratio in-process guarded / bare, ${kind}: \d+\.\d{3}× +\(target < 1\.05×\)\n`))
    }
  })

  it('--count runs one variant: warm-up, "ready", the counted calls once SIGUSR2 arrives, exit 0 (what integrations-count.sh drives)', async () => {
    for (const [variant, stream] of [['bare', '0'], ['memory', '1']]) {
      const child = spawn(process.execPath, [path.join(root, 'benchmark', 'integrations.js'), '--count', variant, stream, '3', '3'], { stdio: ['ignore', 'pipe', 'inherit'] })
      let out = ''
      const ready = new Promise<void>((resolve) =>
        child.stdout.on('data', (b) => {
          out += b
          if (out.includes('ready\n')) resolve()
        }),
      )
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
      await ready
      child.kill('SIGUSR2')
      expect(await exited).toBe(0)
      expect(out).toBe('ready\n')
    }
  }, 60_000)
})
