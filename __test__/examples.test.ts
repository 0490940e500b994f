// The examples run, on the embedded store and on Redis, and show what they promise.
import { execFile } from 'node:child_process'
import path from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { redisUrl } from './helpers/stores.js'

const run = promisify(execFile)
const root = path.join(__dirname, '..')

async function example(name: string, env: Record<string, string> = {}) {
  const { stdout } = await run(process.execPath, [path.join(root, 'examples', name)], { timeout: 30_000, env: { ...process.env, ...env } })
  return stdout
}

describe('examples', () => {
  for (const label of ['memory', 'redis'] as const) {
    const env = () => (label === 'redis' ? { REDIS_URL: redisUrl() } : { REDIS_URL: '' })
    it(`demo.js [${label}]`, async () => {
      const out = await example('demo.js', env())
      expect(out).toContain('cache     hit — no call, $0')
      expect(out).toContain('guard     REFUSED by provider-rpm — nothing charged')
      // dave's refused request charged none of his tokens
      expect(out).toMatch(/dave after the refusal: user-tokens 400,/)
      expect(out).toMatch(/alice asks for 300 more tokens: refused by user-tokens/)
    })

    it(`cost-control.js [${label}]`, async () => {
      const out = await example('cost-control.js', env())
      expect(out).toContain('ALERT     Daily spend at $0.07 of $0.10 budget')
      expect(out).toContain('ALERT     Daily spend at $0.09 of $0.10 budget')
      expect(out).toContain('model     gpt-4o-mini (budget, 91% of budget used)')
      expect(out).toMatch(/spend today \$0\.091419 by feature/)
    })
  }
})
