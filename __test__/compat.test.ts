// tollgate in every Node test setup: one small suite (compat/body.cjs) run under node:test,
// jest with several workers and with --detectOpenHandles, vitest's threads pool, and inside
// worker_threads — each a real child process that must pass and exit on its own.
import { execFile } from 'node:child_process'
import path from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { redisUrl } from './helpers/stores.js'

const exec = promisify(execFile)
const root = path.join(__dirname, '..')
const bin = (name: string) => path.join(root, 'node_modules', '.bin', name)

async function runIn(cmd: string, args: string[]) {
  // A child that does not exit by itself (an open handle) fails on this timeout.
  const { stdout, stderr } = await exec(cmd, args, { cwd: root, timeout: 60_000, env: { ...process.env, REDIS_URL: redisUrl(), NO_COLOR: '1', FORCE_COLOR: '0' } })
  // eslint-disable-next-line no-control-regex
  return (stdout + stderr).replace(/\x1b\[[0-9;]*m/g, '')
}

describe('Node test setups', () => {
  it('node:test', async () => {
    const out = await runIn(process.execPath, ['--test', '__test__/compat/node-test.test.mjs'])
    expect(out).toMatch(/# pass 1/)
    expect(out).toMatch(/# fail 0/)
  })

  it('worker_threads: two workers and the main thread', async () => {
    const out = await runIn(process.execPath, ['__test__/compat/worker-thread.mjs'])
    const all = ['memory limiter', 'errors', 'tokens', 'redis']
    expect(JSON.parse(out)).toEqual({ workers: [all, all], main: all })
  })

  it('jest with two workers', async () => {
    const out = await runIn(bin('jest'), ['--config', '__test__/compat/jest.compat.config.cjs', '--maxWorkers=2'])
    expect(out).toMatch(/Tests:\s+2 passed, 2 total/)
  })

  it('jest --detectOpenHandles finds nothing open', async () => {
    const out = await runIn(bin('jest'), ['--config', '__test__/compat/jest.compat.config.cjs', '--detectOpenHandles'])
    expect(out).toMatch(/Tests:\s+2 passed, 2 total/)
    expect(out).not.toMatch(/open handle/i)
  })

  it("vitest's threads pool", async () => {
    const out = await runIn(bin('vitest'), ['run', '--config', '__test__/compat/vitest.threads.config.ts'])
    expect(out).toMatch(/Tests\s+1 passed/)
  })
})
