// tollgate/dashboard: the page in a real headless Chromium (Debian's `chromium`, driven by
// playwright-core) over state a Guard and a CostTracker made on the harness's Redis; the JSON
// endpoint against the stored state; who is let in; bad requests; the embedded-store mode.
import { execFileSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { copyFileSync, existsSync, mkdirSync, statSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { networkInterfaces } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CostTracker, Guard, MemoryStore, Quota, RedisStore, ResponseCache } from '../lib/index.js'
import { redisUrl } from './helpers/stores.js'
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { dashboard } = require('../lib/dashboard.js') as typeof import('../lib/dashboard.js')

const ROOT = join(__dirname, '..')
const OUTPUT = join(ROOT, 'test-output')

/** The browser: $CHROMIUM_PATH, else `chromium` / `chromium-browser` on the PATH, else null. */
function browserPath(): string | null {
  if (process.env.CHROMIUM_PATH && existsSync(process.env.CHROMIUM_PATH)) return process.env.CHROMIUM_PATH
  for (const name of ['chromium', 'chromium-browser', 'google-chrome']) {
    try {
      const p = execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim()
      if (p) return p
    } catch {
      // not installed under this name
    }
  }
  return null
}

interface Served {
  url: string
  close(): Promise<void>
}

function serve(handler: http.RequestListener, host = '127.0.0.1'): Promise<Served> {
  const server = http.createServer(handler)
  return new Promise((resolve) => {
    server.listen(0, host, () => {
      const { port } = server.address() as AddressInfo
      resolve({ url: `http://127.0.0.1:${port}`, close: () => new Promise((r) => server.close(() => r())) })
    })
  })
}

interface Reply {
  status: number
  headers: http.IncomingHttpHeaders
  body: string
}

function request(url: string, options: http.RequestOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, options, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d) => (body += d))
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

const EVIL = '<script>window.__evil=1</script>'
const EVIL_IMG = '<img src=x onerror="window.__evil=2">'

describe('dashboard on Redis', () => {
  const id = randomUUID().slice(0, 8)
  const guardPrefix = `dash:${id}:guard:`
  const costPrefix = `dash:${id}:cost:`
  let store: RedisStore
  let tracker: CostTracker
  let guard: Guard<{ user: string; org: string }>
  let cache: ResponseCache
  let quota: Quota
  let served: Served
  const keys = [
    { id: 'key-a', rpm: 60, tpm: 10_000, rpd: 1_000 },
    { id: 'key-b', rpm: 2, tpm: 5_000, rpd: 100 },
  ]

  beforeAll(async () => {
    store = new RedisStore(redisUrl())
    // The tracker's clock goes back to record some history for the chart, then follows Date.now.
    let past: number | null = null
    tracker = new CostTracker(store, { prefix: costPrefix, dailyBudget: 5, monthlyBudget: 100, onAlert: () => {}, now: () => past ?? Date.now() })
    const HOUR = 3_600_000
    for (let i = 13; i >= 1; i--) {
      past = Date.now() - i * 24 * HOUR
      await tracker.recordUsage(i % 3 ? 'gpt-4o' : 'gpt-4o-mini', 200_000 + 37_000 * ((i * 7) % 11), 60_000, { feature: i % 2 ? 'chat' : 'search' })
    }
    for (let i = 23; i >= 1; i--) {
      past = Date.now() - i * HOUR
      await tracker.recordUsage('gpt-4o-mini', 100_000 * (1 + ((i * 5) % 7)), 20_000, { feature: 'chat' })
    }
    past = null
    cache = new ResponseCache(store, { prefix: `dash:${id}:cache:` })
    quota = new Quota({ store, prefix: `dash:${id}:quota:` })
    guard = new Guard<{ user: string; org: string }>({
      store,
      prefix: guardPrefix,
      tracker,
      cache,
      limits: [
        { id: 'user-rpm', requests: 3, per: '1m', scope: (ctx) => ctx.user },
        { id: 'org-tokens', tokens: 200_000, per: 'day', scope: (ctx) => ctx.org },
      ],
    })
    // The handler first: it watches the guard's decisions from then on.
    const handler = dashboard({
      redis: redisUrl(),
      prefixes: [guardPrefix, costPrefix],
      trackers: [tracker],
      guards: [guard],
      caches: [cache],
      quotas: [{ quota, scope: 'pool', keys }],
      stores: [store],
      refreshMs: 60_000,
    })
    const call = async (user: string, model: string, tokens: number, tags: Record<string, string>) => {
      const d = await guard.acquire({ user, org: 'acme' }, { model, tokens, maxTokens: 500, tags })
      if (d.ok) await d.settle({ inputTokens: tokens, outputTokens: 400 })
      return d
    }
    for (let i = 0; i < 3; i++) await call('alice', 'gpt-4o', 20_000, { feature: 'chat' })
    await call('bob', 'gpt-4o-mini', 50_000, { feature: 'search' })
    await call(EVIL, 'gpt-4o', 1_000, { feature: EVIL_IMG })
    // Refused: alice used her three requests this minute.
    expect((await call('alice', 'gpt-4o', 10, { feature: 'chat' })).ok).toBe(false)
    // A cache hit: the same messages twice, the answer stored in between.
    const messages = [{ role: 'user', content: 'hello' }]
    await cache.set('gpt-4o', messages, { text: 'hi' })
    const hit = await guard.acquire({ user: 'carol', org: 'acme' }, { model: 'gpt-4o', messages, maxTokens: 1_000 })
    expect(hit.cached).toEqual({ text: 'hi' })
    await quota.reserve('pool', keys, 300)
    served = await serve(handler)
  })

  afterAll(async () => {
    await served?.close()
    await store?.close()
  })

  it('serves the stored state as JSON: budgets as totals() says, the meters, history, quota keys', async () => {
    const r = await request(`${served.url}/data.json?days=3&hours=2`)
    expect(r.status).toBe(200)
    expect(r.headers['content-type']).toMatch(/^application\/json/)
    const d = JSON.parse(r.body)
    const totals = await tracker.totals()
    const mine = d.budgets.find((b: { prefix: string }) => b.prefix === costPrefix)
    expect(mine.daily).toEqual(totals.daily)
    expect(mine.monthly).toEqual(totals.monthly)
    expect(mine.history).toEqual(await tracker.history({ days: 3, hours: 2 }))
    expect(mine.history.days.at(-1).byModel['gpt-4o-mini']).toBeGreaterThan(0)
    // user-rpm: alice 3 requests (her fourth was refused), bob 1; busiest first.
    const rpm = d.guard.filter((g: { limit: string }) => g.limit === 'user-rpm')
    const rows = rpm.map((g: { scope: string; used: number; max: number }) => [g.scope, g.used, g.max])
    expect(rows[0]).toEqual(['alice', 3, 3])
    expect(rows.slice(1).sort()).toEqual([
      [EVIL, 1, 3],
      ['bob', 1, 3],
    ])
    expect(d.savings.cachedCalls).toBe(1)
    // The hit avoided about 4 input tokens and 1,000 output tokens of gpt-4o ($10/1M output).
    expect(d.savings.estimatedUsd).toBeGreaterThan(0.01)
    expect(d.savings.estimatedUsd).toBeLessThan(0.0101)
    expect(d.refusals).toEqual([expect.objectContaining({ limit: 'user-rpm', scope: 'alice', model: 'gpt-4o', guard: guardPrefix })])
    expect(d.quota).toEqual([{ scope: 'pool', keys: expect.arrayContaining([expect.objectContaining({ key: 'key-a' }), expect.objectContaining({ key: 'key-b' })]) }])
    expect(d.store).toMatchObject({ ping: 'PONG', maxmemoryPolicy: expect.any(String) })
    expect(d.stores).toEqual([expect.objectContaining({ status: 'up' })])
    expect(d.classes.map((c: { kind: string }) => c.kind)).toEqual(['Guard', 'CostTracker', 'Quota'])
    expect(d.caches[0]).toMatchObject({ name: 'ResponseCache', hits: 1 })
    // `<` never appears raw in the JSON, whatever the names hold.
    expect(r.body).not.toContain('<')
  })

  it('renders in Chromium: the numbers of totals(), names as text, no console errors, a screenshot', async (ctx) => {
    const executablePath = browserPath()
    if (executablePath === null) {
      ctx.skip(true, 'no Chromium installed (apt-get install chromium, or set CHROMIUM_PATH): the browser test needs one')
      return
    }
    const { chromium } = await import('playwright-core')
    const browser = await chromium.launch({ executablePath, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] })
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1 })
      const problems: string[] = []
      page.on('console', (m) => m.type() === 'error' && problems.push(m.text()))
      page.on('pageerror', (e) => problems.push(e.message))
      await page.goto(`${served.url}/`)
      await page.waitForSelector('#status[data-ready="1"]', { timeout: 15_000 })
      const totals = await tracker.totals()
      const daily = page.locator('[data-testid="daily-spent"]').first()
      expect(Number(await daily.getAttribute('data-value'))).toBe(totals.daily.spent)
      // The page's format: 2 decimals from $1, 4 below, 6 below a cent.
      const fmt = (n: number) => {
        const digits = n === 0 ? 2 : n < 0.01 ? 6 : n < 1 ? 4 : 2
        return `$${n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })}`
      }
      expect(await daily.textContent()).toBe(fmt(totals.daily.spent))
      expect(await page.locator('[data-testid="monthly-spent"]').first().textContent()).toBe(fmt(totals.monthly.spent))
      // The scope and the tag are shown as text, never run.
      await expect(page.locator('td', { hasText: EVIL }).count()).resolves.toBeGreaterThan(0)
      await expect(page.locator('td', { hasText: `feature=${EVIL_IMG}` }).count()).resolves.toBeGreaterThan(0)
      expect(await page.evaluate(() => (window as unknown as { __evil?: number }).__evil)).toBeUndefined()
      // Two charts (per day, per hour) drawn as SVG, one bar per day asked.
      expect(await page.locator('svg[aria-label="spend per day"] rect.bar').count()).toBe(14)
      expect(await page.locator('svg[aria-label="spend per hour"] rect.bar').count()).toBe(24)
      expect(problems).toEqual([])
      mkdirSync(OUTPUT, { recursive: true })
      const shot = join(OUTPUT, 'dashboard.png')
      await page.screenshot({ path: shot, fullPage: true })
      expect(statSync(shot).size).toBeGreaterThan(10_000)
      // The README's picture: refreshed from this screenshot on demand, so a test run leaves the
      // checkout as it was (TOLLGATE_UPDATE_SCREENSHOT=1 npx vitest run __test__/dashboard.test.ts).
      if (process.env.TOLLGATE_UPDATE_SCREENSHOT === '1') copyFileSync(shot, join(ROOT, 'docs', 'dashboard.png'))
      // Readable on a phone: nothing wider than the screen.
      await page.setViewportSize({ width: 390, height: 844 })
      expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390)
    } finally {
      await browser.close()
    }
  }, 60_000)

  it('bad requests get a 4xx with a short body, never a stack', async () => {
    const cases: Array<[string, http.RequestOptions, number]> = [
      ['/data.json?days=abc', {}, 400],
      ['/data.json?days=0', {}, 400],
      ['/data.json?days=401', {}, 400],
      ['/data.json?hours=49', {}, 400],
      ['/data.json?days=1e3', {}, 400],
      ['/data.json?hours=-1', {}, 400],
      ['/data.json?days=3&evil=1', {}, 400],
      ['/nope', {}, 404],
      ['/data.json/x', {}, 404],
      ['/../../etc/passwd', {}, 404],
      ['/', { method: 'POST' }, 405],
      ['/data.json', { method: 'DELETE' }, 405],
    ]
    for (const [path, options, status] of cases) {
      const r = await request(served.url + path, options)
      expect([path, r.status]).toEqual([path, status])
      expect(r.body.length).toBeLessThan(200)
      expect(r.body).not.toMatch(/\bat .+:\d+|Error/)
    }
    expect((await request(`${served.url}/`, { method: 'POST' })).headers.allow).toBe('GET, HEAD')
    const head = await request(`${served.url}/`, { method: 'HEAD' })
    expect([head.status, head.body]).toEqual([200, ''])
    const page = await request(`${served.url}/`)
    expect(page.headers['content-security-policy']).toMatch(/default-src 'none'/)
    expect(page.body).not.toMatch(/<script(?! nonce=)/)
  })

  it('without authorize: requests not from this machine, or forwarded by a proxy, get 403', async () => {
    const forwarded = await request(`${served.url}/`, { headers: { 'x-forwarded-for': '203.0.113.9' } })
    expect(forwarded.status).toBe(403)
    expect((await request(`${served.url}/data.json`, { headers: { forwarded: 'for=203.0.113.9' } })).status).toBe(403)
    // From another address of this machine (not loopback), when it has one.
    const external = Object.values(networkInterfaces())
      .flat()
      .find((a) => a && a.family === 'IPv4' && !a.internal)
    if (external) {
      const s = await serve(dashboard({ trackers: [tracker] }), '0.0.0.0')
      try {
        const port = new URL(s.url).port
        const r = await request(`http://${external.address}:${port}/data.json`)
        expect(r.status).toBe(403)
        expect(r.body).toMatch(/authorize/)
      } finally {
        await s.close()
      }
    }
  })

  it('authorize(req) decides: false, a throw or a rejection answer 401', async () => {
    const seen: string[] = []
    const h = dashboard({
      trackers: [tracker],
      authorize: (req) => {
        seen.push(req.url!)
        const t = req.headers.authorization
        if (t === 'Bearer boom') throw new Error('boom')
        if (t === 'Bearer later') return Promise.reject(new Error('later'))
        return t === 'Bearer ok'
      },
    })
    const s = await serve(h)
    try {
      expect((await request(`${s.url}/data.json`)).status).toBe(401)
      for (const t of ['Bearer no', 'Bearer boom', 'Bearer later']) {
        const r = await request(`${s.url}/data.json`, { headers: { authorization: t } })
        expect([t, r.status, r.body]).toEqual([t, 401, 'unauthorized\n'])
      }
      // authorize replaces the localhost rule: a forwarded request with the token is served.
      const ok = await request(`${s.url}/data.json`, { headers: { authorization: 'Bearer ok', 'x-forwarded-for': '203.0.113.9' } })
      expect(ok.status).toBe(200)
      expect(seen).toHaveLength(5)
    } finally {
      await s.close()
    }
  })

  it('mounts under a path (fastify and hono hand it the full URL) and refuses bad options', async () => {
    const s = await serve(dashboard({ trackers: [tracker], path: '/ops/tollgate/' }))
    try {
      expect((await request(`${s.url}/ops/tollgate/`)).status).toBe(200)
      expect((await request(`${s.url}/ops/tollgate`)).status).toBe(200)
      expect((await request(`${s.url}/ops/tollgate/data.json`)).status).toBe(200)
      expect((await request(`${s.url}/data.json`)).status).toBe(404)
      expect((await request(`${s.url}/ops/tollgatex/data.json`)).status).toBe(404)
    } finally {
      await s.close()
    }
    expect(() => dashboard({ redis: 'http://x' })).toThrow(TypeError)
    expect(() => dashboard({ guards: [{}] } as never)).toThrow(TypeError)
    expect(() => dashboard({ refreshMs: 10 })).toThrow(RangeError)
    expect(() => dashboard({ nope: 1 } as never)).toThrow(TypeError)
  })

  it('an unreachable Redis shows as one line on the page data, not a failure', async () => {
    const s = await serve(dashboard({ redis: 'redis://127.0.0.1:1', trackers: [tracker] }))
    try {
      const r = await request(`${s.url}/data.json`)
      expect(r.status).toBe(200)
      const d = JSON.parse(r.body)
      expect(d.store).toEqual({ url: 'redis://127.0.0.1:1', error: expect.stringMatching(/ECONNREFUSED|connect/) })
      expect(d.budgets[0].daily).toEqual((await tracker.totals()).daily)
    } finally {
      await s.close()
    }
  })
})

describe('dashboard on an embedded MemoryStore', () => {
  it('shows the scopes this process used (read with peek), refusals, spend and history', async () => {
    let t = Date.UTC(2026, 10, 25, 10, 30)
    const store = new MemoryStore({ now: () => t })
    const tracker = new CostTracker(store, { dailyBudget: 2, onAlert: () => {} })
    const guard = new Guard({ store, tracker, limits: [{ id: 'rpm', requests: 2, per: '1m', scope: (c: { user: string }) => c.user }, { id: 'usd', usd: 1, per: 'day', scope: 'all' }] })
    const s = await serve(dashboard({ trackers: tracker, guards: guard, now: () => t }))
    try {
      for (const user of ['ann', 'ann', 'ann', 'ben']) {
        const d = await guard.acquire({ user }, { model: 'gpt-4o', tokens: 10_000, maxTokens: 100 })
        if (d.ok) await d.settle({ inputTokens: 10_000, outputTokens: 100 })
      }
      t += 3_600_000
      await tracker.recordUsage('gpt-4o-mini', 1_000_000, 0)
      const d = JSON.parse((await request(`${s.url}/data.json?days=2&hours=3`)).body)
      expect(d.source).toBe('process')
      expect(d.store).toBeNull()
      const rows = d.guard.map((g: { limit: string; scope: string; used: number; max: number }) => [g.limit, g.scope, g.used, g.max])
      // ann's window slid by an hour: her two requests have left it.
      expect(rows).toEqual([
        ['rpm', 'ann', 0, 2],
        ['rpm', 'ben', 0, 2],
        ['usd', 'all', 0.078, 1],
      ])
      expect(d.refusals).toEqual([{ at: new Date(Date.UTC(2026, 10, 25, 10, 30)).toISOString(), guard: 'tollgate:guard:', limit: 'rpm', scope: 'ann', retryAfterMs: expect.any(Number), reason: null, model: 'gpt-4o' }])
      const totals = await tracker.totals()
      expect(d.budgets).toEqual([{ prefix: 'tollgate:cost:', daily: totals.daily, monthly: totals.monthly, history: await tracker.history({ days: 2, hours: 3 }) }])
      // 3 × (10k × $2.50 + 100 × $10) / 1M, then 1M × $0.15 / 1M an hour later.
      expect(d.budgets[0].history.hours.map((h: { spent: number }) => h.spent)).toEqual([0, 0.078, 0.15])
      expect(d.classes).toEqual([
        expect.objectContaining({ kind: 'Guard', decisions: 4, refused: { rpm: 1 }, policy: null }),
        expect.objectContaining({ kind: 'CostTracker', policy: null }),
      ])
    } finally {
      await s.close()
    }
  })

  it('is importable as tollgate/dashboard from ESM and CommonJS', async () => {
    const code = `
      import { dashboard } from 'tollgate/dashboard'
      import def from 'tollgate/dashboard'
      import { createRequire } from 'node:module'
      const cjs = createRequire(import.meta.url)('tollgate/dashboard')
      console.log(JSON.stringify({ same: cjs.dashboard === dashboard && def.dashboard === dashboard, type: typeof dashboard }))
    `
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', code], { cwd: ROOT, encoding: 'utf8', timeout: 10_000 })
    expect(JSON.parse(out)).toEqual({ same: true, type: 'function' })
  })
})
