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

    it(`express-chat.js [${label}]`, async () => {
      const out = await example('express-chat.js', { ...env(), OPENAI_API_KEY: '' })
      expect(out).toContain('RateLimit-Policy of every response: "user-rpm";q=4;w=60, "user-inflight";q=2;qu="concurrent-requests"')
      expect(out).toMatch(/alice POST \/chat +→ 200 "Hello from the local model\."\n +RateLimit: "user-rpm";r=3, "user-inflight";r=1\n/)
      // the third call is refused by her dollar budget, before the provider: her request was counted by the HTTP layer
      expect(out).toMatch(/alice POST \/chat +→ 429 refused by user-usd, retry in \d+ s\n +RateLimit: "user-rpm";r=1, "user-inflight";r=1\n/)
      expect(out).toMatch(/bob +GET \/quota +→ 200 \{"user-usd":0\.001,"org-usd":19\.99892\}/)
      expect(out).toMatch(/bob +GET \/quota +→ 429 user-rpm, retry in 60 s\n +RateLimit: "user-rpm";r=0;t=60, "user-inflight";r=2\n/)
    })

    it(`ai-sdk.js [${label}]`, async () => {
      const out = await example('ai-sdk.js', { ...env(), OPENAI_API_KEY: '' })
      expect(out).toContain('generateText  "Guards decide every limit at once." — 1200 in, 180 out; alice has 1520 tokens left today')
      expect(out).toContain('from the cache: true; alice still has 1520')
      expect(out).toContain('settled when the stream ended: alice has 140 tokens left')
      expect(out).toContain('refused       ERR_TOLLGATE_LIMITED by user-tokens: the provider was not called; alice still has 140')
      expect(out).toContain('"calls":4,"refused":1,"cached":1,"settled":2,"cancelled":0,"estimated":0')
    })
  }
})
