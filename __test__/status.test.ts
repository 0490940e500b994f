// `tollgate status` against the harness's redis-server: state made by a Guard, a CostTracker and
// a Quota on one prefix, read back by the CLI run as a child process.
import { execFile } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CostTracker, Guard, Quota, RedisStore } from '../lib/index.js'
import { Clock, clusterUrls, redisUrl } from './helpers/stores.js'

// eslint-disable-next-line @typescript-eslint/no-require-imports
const status = require('../lib/status.js') as {
  main(argv: string[], io: { stdout: unknown; stderr: unknown; env: Record<string, string | undefined> }): Promise<number>
}

const BIN = join(__dirname, '..', 'bin', 'tollgate.js')
const NOW = Date.UTC(2026, 0, 15, 12, 0, 0)

interface Run {
  code: number
  stdout: string
  stderr: string
}

function cli(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const env = { ...process.env, NO_COLOR: undefined, REDIS_URL: undefined }
    execFile(process.execPath, [BIN, ...args], { env, timeout: 15_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0
      resolve({ code, stdout, stderr })
    })
  })
}

const users = ['alice', 'bob', 'odd:{scope}%'] as const
interface Ctx {
  user: string
  org: string
  model: string
}
const ctxOf = (user: string): Ctx => ({ user, org: 'acme', model: 'gpt-4o' })
const MAX = ['--max', 'user-rpm=10', '--max', 'org-usd=$2', '--max', 'org:tokens=100000', '--max', 'model-conc=4']

describe('tollgate status', () => {
  const clock = new Clock(NOW)
  const prefix = `t:status:${randomUUID().slice(0, 8)}:`
  let store: RedisStore
  let tracker: CostTracker
  let guard: Guard<Ctx>
  let quotaTokens = 0

  beforeAll(async () => {
    store = new RedisStore(redisUrl(), { now: clock.now })
    tracker = new CostTracker(store, { prefix: `${prefix}cost:`, dailyBudget: 5, monthlyBudget: 100, onAlert: () => {} })
    guard = new Guard<Ctx>({
      store,
      tracker,
      prefix: `${prefix}guard:`,
      limits: [
        { id: 'user-rpm', scope: (c) => c.user, requests: 10, per: '1m' },
        { id: 'org-usd', scope: (c) => c.org, usd: 2, per: 'month' },
        { id: 'org:tokens', scope: (c) => c.org, tokens: 100_000, per: 'day' },
        { id: 'model-conc', scope: (c) => c.model, concurrent: 4 },
      ],
    })
    // alice 4 calls, bob 2, the odd scope 1; the last call stays in flight.
    const calls = ['alice', 'bob', 'alice', 'odd:{scope}%', 'alice', 'bob', 'alice']
    for (const [i, user] of calls.entries()) {
      const d = await guard.acquire(ctxOf(user), { model: 'gpt-4o', tokens: 1_000 + i * 100, maxTokens: 200, tags: { feature: i % 2 ? 'chat' : 'search' } })
      expect(d.ok).toBe(true)
      if (i < calls.length - 1) await d.settle({ inputTokens: 900 + i * 10, outputTokens: 50 + i })
    }
    await tracker.recordCost(0.25, { tags: { feature: 'tools' } })
    const held = await tracker.reserve(0.125)
    expect(held.hold).not.toBeNull()
    const quota = new Quota(store, { prefix: `${prefix}quota:`, now: clock.now, rpmWindow: true })
    const keys = [{ id: 'key-a', rpm: 500, tpm: 250_000, rpd: 10_000 }]
    for (const tokens of [2_400, 1_100]) {
      const r = await quota.reserve('tenant:acme', keys, { tokens })
      if (!r.ok) throw new Error(`quota refused: ${r.reason}`)
      await quota.commit(r.hold, { tokens: tokens - 100 })
      quotaTokens += tokens - 100
    }
  })

  afterAll(async () => {
    await store.close()
  })

  const base = () => ['status', '--redis', redisUrl(), '--prefix', prefix, '--now', String(clock.t)]

  it('--json matches the tracker totals, the guard peeks and the quota commits', async () => {
    const run = await cli(...base(), '--daily-budget', '5', '--monthly-budget', '100', ...MAX, '--json')
    expect(run.stderr).toBe('')
    expect(run.code).toBe(0)
    const s = JSON.parse(run.stdout)
    expect(s.store.ping).toBe('PONG')
    expect(typeof s.store.maxmemoryPolicy).toBe('string')
    expect(s.scan).toMatchObject({ capped: false, maxKeys: 10_000 })
    expect(s.now).toBe(new Date(NOW).toISOString())

    const totals = await tracker.totals()
    expect(s.budgets).toHaveLength(1)
    expect(s.budgets[0].prefix).toBe(`${prefix}cost:`)
    for (const period of ['daily', 'monthly'] as const) {
      const { spent, reserved, budget, remaining, byTag } = totals[period]
      expect(s.budgets[0][period]).toEqual({ period: totals[period].period, spent, reserved, budget, remaining, byTag })
    }
    expect(totals.daily.reserved).toBe(0.125)
    expect(Object.keys(totals.daily.byTag!.feature)).toEqual(expect.arrayContaining(['chat', 'search', 'tools']))

    // Every meter: the CLI's remaining is what peek says is left.
    const rows = s.guard as Array<{ limit: string; scope: string; used: number; held: number; remaining: number; max: number; holds: number }>
    expect(rows.map((r) => `${r.limit} ${r.scope}`).sort()).toEqual(
      ['model-conc gpt-4o', 'org-usd acme', 'org:tokens acme', ...users.map((u) => `user-rpm ${u}`)].sort(),
    )
    for (const user of users) {
      const { remaining } = await guard.peek(ctxOf(user))
      const row = (limit: string, scope: string) => rows.find((r) => r.limit === limit && r.scope === scope)!
      expect(row('user-rpm', user).remaining).toBe(remaining['user-rpm'])
      expect(row('org-usd', 'acme').remaining).toBeCloseTo(remaining['org-usd'], 9)
      expect(row('org:tokens', 'acme').remaining).toBe(remaining['org:tokens'])
      expect(row('model-conc', 'gpt-4o').remaining).toBe(remaining['model-conc'])
    }
    // Busiest first: alice (4 calls) before bob (2) before the odd scope (1).
    expect(rows.filter((r) => r.limit === 'user-rpm').map((r) => [r.scope, r.used])).toEqual([
      ['alice', 4],
      ['bob', 2],
      ['odd:{scope}%', 1],
    ])
    expect(rows.find((r) => r.limit === 'model-conc')!.holds).toBe(1)
    // The guard's usd meter and the tracker count the same settled dollars (the tracker also has
    // the $0.25 tool call; the guard also holds the in-flight call's estimate).
    const usd = rows.find((r) => r.limit === 'org-usd')!
    expect(usd.held).toBeGreaterThan(0)
    expect(usd.used - usd.held).toBeCloseTo(totals.monthly.spent - 0.25, 9)

    expect(s.quota).toEqual([
      { prefix: `${prefix}quota:`, scope: 'tenant:acme', keys: [{ key: 'key-a', day: '2026-01-15', requestsToday: 2, tokensToday: quotaTokens, windowRequests: 2, windowTokens: quotaTokens }] },
    ])
  })

  it('the table shows the same numbers, aligned, without colours when stdout is not a TTY', async () => {
    const json = JSON.parse((await cli(...base(), ...MAX, '--json')).stdout)
    const run = await cli(...base(), '--daily-budget', '5', ...MAX)
    expect(run.code).toBe(0)
    expect(run.stdout).not.toContain('\x1b[')
    const lines = run.stdout.split('\n')
    const totals = await tracker.totals()
    const day = lines.find((l) => l.includes(`day ${totals.daily.period}`))!
    expect(day).toContain(`$${totals.daily.spent.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 6 })}`)
    expect(day).toContain('$5.00')
    const alice = lines.find((l) => /^\s+user-rpm\s+alice\s/.test(l))!
    expect(alice.split(/\s+/).filter(Boolean).slice(2, 6)).toEqual(['4', '10', '6', '40%'])
    const tokens = json.guard.find((g: { limit: string }) => g.limit === 'org:tokens')
    const tokensLine = lines.find((l) => /^\s+org:tokens\s+acme\s/.test(l))!
    expect(tokensLine).toContain(tokens.used.toLocaleString('en-US'))
    expect(tokensLine).toMatch(/today$/)
    expect(lines.some((l) => l.includes('odd:{scope}%'))).toBe(true)
    expect(lines.find((l) => /^\s+tenant:acme\s+key-a\s/.test(l))).toContain(quotaTokens.toLocaleString('en-US'))
    // Columns line up: numbers are right-aligned under their header.
    const header = lines.findIndex((l) => /^\s+limit\s+scope\s+used/.test(l))
    const guardRows = lines.slice(header + 1, header + 1 + json.guard.length)
    for (const column of ['used', 'max', 'left', 'in flight']) {
      const end = lines[header].indexOf(column) + column.length
      for (const row of guardRows) expect(row[end - 1] !== ' ' && (row[end] ?? ' ') === ' ', `${column} in ${row}`).toBe(true)
    }
  })

  it('colours a TTY unless NO_COLOR is set', async () => {
    const out = (isTTY: boolean, env: Record<string, string | undefined>) => {
      let text = ''
      const stdout = { isTTY, write: (s: string) => ((text += s), true) }
      return status.main([...base().slice(1), ...MAX], { stdout, stderr: { write: () => true }, env }).then((code) => ({ code, text }))
    }
    const tty = await out(true, {})
    expect(tty.code).toBe(0)
    expect(tty.text).toContain('\x1b[1m')
    expect((await out(true, { NO_COLOR: '1' })).text).not.toContain('\x1b[')
    expect((await out(false, {})).text).not.toContain('\x1b[')
  })

  it('says when it stopped at --max-keys', async () => {
    const s = JSON.parse((await cli(...base(), '--max-keys', '3', '--json')).stdout)
    expect(s.scan).toEqual({ prefixes: [prefix], keys: 3, maxKeys: 3, capped: true, cluster: false })
    const run = await cli(...base(), '--max-keys', '3')
    expect(run.code).toBe(0)
    expect(run.stdout).toContain('capped at 3 keys')
  })

  it('an unreachable Redis is one line on stderr and exit 1', async () => {
    const port = await new Promise<number>((resolve) => {
      const srv = createServer()
      srv.listen(0, '127.0.0.1', () => {
        const { port } = srv.address() as { port: number }
        srv.close(() => resolve(port))
      })
    })
    const run = await cli('status', '--redis', `redis://user:hunter2@127.0.0.1:${port}`, '--json')
    expect(run.code).toBe(1)
    expect(run.stdout).toBe('')
    expect(run.stderr.trimEnd().split('\n')).toHaveLength(1)
    expect(run.stderr).toContain(`cannot read Redis at redis://user:***@127.0.0.1:${port}`)
    expect(run.stderr).not.toContain('hunter2')
  })

  it('a malformed URL is one line and exit 2', async () => {
    for (const url of ['http://127.0.0.1:6379', 'redis://127.0.0.1:99999', 'redis://127.0.0.1:6379/abc', 'not a url']) {
      const run = await cli('status', '--redis', url)
      expect(run.code, url).toBe(2)
      expect(run.stdout).toBe('')
      expect(run.stderr.trimEnd().split('\n'), url).toHaveLength(1)
    }
  })

  it('unknown options and missing values exit 2 with the usage; --help exits 0', async () => {
    for (const args of [['status', '--bogus'], ['status', '--redis'], ['frobnicate']]) {
      const run = await cli(...args)
      expect(run.code, args.join(' ')).toBe(2)
      expect(run.stderr).toContain('Usage: tollgate')
    }
    for (const args of [['status', '--top', '0'], ['status', '--max', 'nope'], ['status', '--now', 'yesterday']]) {
      const run = await cli(...args)
      expect(run.code, args.join(' ')).toBe(2)
      expect(run.stderr.trimEnd().split('\n')[0]).toMatch(/^tollgate status: --/)
    }
    const help = await cli('status', '--help')
    expect(help.code).toBe(0)
    expect(help.stdout).toContain('--prefix P')
    expect(help.stderr).toBe('')
  })

  it('is the package\'s `tollgate` bin, shipped, and runs through the link npm makes', async () => {
    const pkg = JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8'))
    expect(pkg.bin).toEqual({ tollgate: 'bin/tollgate.js' })
    expect(pkg.files).toContain('bin/')
    expect(readFileSync(BIN, 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true)
    expect(statSync(BIN).mode & 0o111).not.toBe(0)
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-bin-'))
    try {
      const link = join(dir, 'tollgate')
      symlinkSync(BIN, link)
      const run = await new Promise<Run>((resolve) =>
        execFile(link, ['status', ...base().slice(1), '--json'], (err, stdout, stderr) => resolve({ code: err ? Number(err.code) : 0, stdout, stderr })),
      )
      expect(run.stderr).toBe('')
      expect(JSON.parse(run.stdout).scan.prefixes).toEqual([prefix])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('tollgate status on a Redis Cluster', () => {
  it('each master shows its own meters, together all of them, and the budgets once', async () => {
    const clock = new Clock(NOW)
    const prefix = `t:status-cluster:${randomUUID().slice(0, 8)}:`
    const store = new RedisStore({ cluster: clusterUrls(), now: clock.now, commandTimeoutMs: 5_000 })
    try {
      const tracker = new CostTracker(store, { prefix: `${prefix}cost:`, onAlert: () => {} })
      const guard = new Guard<{ user: string }>({ store, tracker, prefix: `${prefix}guard:`, limits: [{ id: 'rpm', scope: (c) => c.user, requests: 100, per: '1m' }] })
      const users = Array.from({ length: 12 }, (_, i) => `user-${i}`)
      for (const [i, user] of users.entries()) {
        for (let n = 0; n <= i % 3; n++) {
          const d = await guard.acquire({ user }, { model: 'gpt-4o-mini', tokens: 100, maxTokens: 10 })
          await d.settle({ inputTokens: 100, outputTokens: 10 })
        }
      }
      const runs = await Promise.all(clusterUrls().map((url) => cli('status', '--redis', url, '--prefix', prefix, '--now', String(clock.t), '--top', '100', '--json')))
      const reports = runs.map((r) => {
        expect(r.stderr).toBe('')
        return JSON.parse(r.stdout)
      })
      for (const s of reports) expect(s.store.warnings.join(' ')).toContain('Cluster node')
      const rows = reports.flatMap((s) => s.guard as Array<{ scope: string; used: number }>)
      expect(rows.map((r) => [r.scope, r.used]).sort()).toEqual(users.map((u, i) => [u, (i % 3) + 1]).sort())
      // The meters are spread over the masters.
      expect(reports.filter((s) => s.guard.length > 0).length).toBeGreaterThan(1)
      const budgets = reports.flatMap((s) => s.budgets)
      expect(budgets).toHaveLength(1)
      expect(budgets[0].daily.spent).toBe((await tracker.totals()).daily.spent)
    } finally {
      await store.close()
    }
  })
})
