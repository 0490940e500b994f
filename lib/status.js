'use strict'
// `tollgate status`: the shared state in Redis, read without loading the native addon and
// without an optional dependency — a small RESP client over node:net (node:tls for rediss://).
// Read-only: SCAN (never KEYS) with a COUNT, HGETALL, TIME, PING, INFO, DBSIZE.

const net = require('node:net')
const tls = require('node:tls')

const NANO = 1e9
const DEFAULT_PREFIXES = ['tollgate:guard:', 'tollgate:cost:', 'tollgate:quota:']
const DEFAULT_MAX_KEYS = 10_000
const DEFAULT_TOP = 10

const USAGE = `Usage: tollgate status [options]

Prints the state tollgate keeps in Redis: budgets (CostTracker), guard meters (Guard),
quota keys (Quota) and the store's health.

Options:
  --redis URL            redis://[user:password@]host[:port][/db] or rediss://…
                         (default: $REDIS_URL, else redis://127.0.0.1:6379)
  --prefix P             a key prefix the classes were given (repeatable; default
                         tollgate:guard: tollgate:cost: tollgate:quota:)
  --daily-budget USD     the CostTracker's daily budget, to show what is left
  --monthly-budget USD   the CostTracker's monthly budget
  --max ID=N             a guard limit's max (Redis does not store it), in its unit:
                         requests, tokens, calls in flight, or dollars for a usd limit
                         written ID=$N or ID=Nusd (repeatable)
  --now TIME             read as of this time (ISO 8601 or ms since 1970; default: the
                         server's clock): which day and month, which holds have expired
  --top N                scopes shown per guard limit, busiest first (default ${DEFAULT_TOP})
  --max-keys N           keys read at most (default ${DEFAULT_MAX_KEYS.toLocaleString('en-US')})
  --timeout MS           connect and reply timeout (default 2000)
  --json                 print one JSON object instead of tables
  -h, --help             this help

Exit codes: 0 printed, 1 Redis unreachable or failing, 2 bad usage.`

class UsageError extends Error {
  /** `usage`: print the usage after the message (a bad option, not a bad value). */
  constructor(message, usage = false) {
    super(message)
    this.usage = usage
  }
}

/** The command line after `status` → options, or a UsageError. */
function parseArgs(argv, env = process.env) {
  const o = {
    redis: env.REDIS_URL || 'redis://127.0.0.1:6379',
    prefixes: [],
    dailyBudget: null,
    monthlyBudget: null,
    max: {},
    top: DEFAULT_TOP,
    maxKeys: DEFAULT_MAX_KEYS,
    timeoutMs: 2000,
    now: null,
    json: false,
    help: false,
  }
  const positive = (name, s, int) => {
    const n = Number(s)
    if (s === undefined || s === '' || !Number.isFinite(n) || n < 0 || (int && (!Number.isInteger(n) || n < 1))) {
      throw new UsageError(`${name} needs ${int ? 'a positive integer' : 'a number ≥ 0'}, got ${s === undefined ? 'nothing' : JSON.stringify(s)}`)
    }
    return n
  }
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i]
    let value
    const eq = a.startsWith('--') ? a.indexOf('=') : -1
    if (eq > 0) {
      value = a.slice(eq + 1)
      a = a.slice(0, eq)
    }
    const next = () => {
      if (value !== undefined) return value
      i++
      if (i >= argv.length) throw new UsageError(`${a} needs a value`, true)
      return argv[i]
    }
    switch (a) {
      case '-h':
      case '--help':
        o.help = true
        break
      case '--json':
        o.json = true
        break
      case '--redis':
        o.redis = next()
        break
      case '--prefix':
        o.prefixes.push(next())
        break
      case '--daily-budget':
        o.dailyBudget = positive(a, next(), false)
        break
      case '--monthly-budget':
        o.monthlyBudget = positive(a, next(), false)
        break
      case '--top':
        o.top = positive(a, next(), true)
        break
      case '--max-keys':
        o.maxKeys = positive(a, next(), true)
        break
      case '--timeout':
        o.timeoutMs = positive(a, next(), true)
        break
      case '--now': {
        const v = next()
        const t = /^\d+$/.test(v) ? Number(v) : Date.parse(v)
        if (!Number.isFinite(t) || t < 0 || t > 8.64e15) throw new UsageError(`--now needs an ISO 8601 time or ms since 1970, got ${JSON.stringify(v)}`)
        o.now = t
        break
      }
      case '--max': {
        const s = next()
        const m = /^(.+)=(\$)?([0-9.eE+]+)(usd)?$/.exec(s)
        const n = m ? Number(m[3]) : NaN
        if (!m || !Number.isFinite(n) || n < 0) throw new UsageError(`--max needs ID=N (ID=$N or ID=Nusd for dollars), got ${JSON.stringify(s)}`)
        o.max[m[1]] = m[2] || m[4] ? { usd: n } : { n }
        break
      }
      default:
        throw new UsageError(`unknown option ${JSON.stringify(argv[i])}`, true)
    }
  }
  if (o.prefixes.length === 0) o.prefixes = DEFAULT_PREFIXES
  if (!o.help) o.url = parseRedisUrl(o.redis)
  return o
}

/** A Redis URL → connection settings, or a UsageError naming it with the password hidden. */
function parseRedisUrl(s) {
  let u
  try {
    u = new URL(s)
  } catch {
    throw new UsageError(`not a Redis URL: ${JSON.stringify(redact(s))}`)
  }
  const bad = (why) => new UsageError(`bad Redis URL ${redact(s)}: ${why}`)
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw bad('the scheme must be redis:// or rediss://')
  if (!u.hostname) throw bad('no host')
  const port = u.port === '' ? 6379 : Number(u.port)
  const path = u.pathname.replace(/^\//, '')
  if (path !== '' && !/^\d+$/.test(path)) throw bad('the path must be a database number')
  let username, password
  try {
    username = decodeURIComponent(u.username)
    password = decodeURIComponent(u.password)
  } catch {
    throw bad('bad %-encoding')
  }
  return {
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port,
    db: path === '' ? 0 : Number(path),
    username,
    password,
    tls: u.protocol === 'rediss:',
    insecure: u.hash === '#insecure',
    shown: redact(s),
  }
}

/** The URL with its password replaced by `***`. */
function redact(s) {
  return String(s).replace(/^([a-z]+:\/\/[^:@/]*:)[^@/]*@/i, '$1***@')
}

// ---- RESP ---------------------------------------------------------------------------------

class ReplyError extends Error {}

/** One connection, one command at a time (the CLI sends a few hundred at most). */
class Resp {
  constructor(socket, timeoutMs) {
    this.socket = socket
    this.timeoutMs = timeoutMs
    this.buf = Buffer.alloc(0)
    this.waiting = []
    socket.on('data', (d) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d
      this.drain()
    })
    const fail = (err) => {
      this.dead = err
      for (const w of this.waiting.splice(0)) w.reject(err)
    }
    socket.on('error', fail)
    socket.on('close', () => fail(new Error('connection closed')))
  }

  static connect(url, timeoutMs) {
    return new Promise((resolve, reject) => {
      const opts = { host: url.host, port: url.port }
      const socket = url.tls ? tls.connect({ ...opts, servername: net.isIP(url.host) ? undefined : url.host, rejectUnauthorized: !url.insecure }) : net.connect(opts)
      const timer = setTimeout(() => {
        socket.destroy()
        reject(new Error(`no connection within ${timeoutMs} ms`))
      }, timeoutMs)
      socket.once('error', (e) => {
        clearTimeout(timer)
        reject(e)
      })
      socket.once(url.tls ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer)
        socket.removeAllListeners('error')
        resolve(new Resp(socket, timeoutMs))
      })
    })
  }

  call(...args) {
    if (this.dead) return Promise.reject(this.dead)
    const parts = [`*${args.length}\r\n`]
    for (const a of args) {
      const b = String(a)
      parts.push(`$${Buffer.byteLength(b)}\r\n${b}\r\n`)
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.socket.destroy()
        reject(new Error(`no reply to ${args[0]} within ${this.timeoutMs} ms`))
      }, this.timeoutMs)
      this.waiting.push({
        resolve: (v) => (clearTimeout(timer), resolve(v)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      })
      this.socket.write(parts.join(''))
    })
  }

  drain() {
    while (this.waiting.length) {
      const r = parseReply(this.buf, 0)
      if (!r) return
      this.buf = this.buf.subarray(r.end)
      const w = this.waiting.shift()
      if (r.value instanceof ReplyError) w.reject(r.value)
      else w.resolve(r.value)
    }
  }

  close() {
    this.socket.end()
    this.socket.destroy()
  }
}

/** One RESP2 reply at `pos` → { value, end }, or null when more bytes are needed. Bulk strings stay Buffers. */
function parseReply(buf, pos) {
  const nl = buf.indexOf('\r\n', pos)
  if (nl < 0) return null
  const type = String.fromCharCode(buf[pos])
  const line = buf.toString('utf8', pos + 1, nl)
  const end = nl + 2
  switch (type) {
    case '+':
      return { value: line, end }
    case '-':
      return { value: new ReplyError(line), end }
    case ':':
      return { value: Number(line), end }
    case '$': {
      const n = Number(line)
      if (n < 0) return { value: null, end }
      if (buf.length < end + n + 2) return null
      return { value: buf.subarray(end, end + n), end: end + n + 2 }
    }
    case '*': {
      const n = Number(line)
      if (n < 0) return { value: null, end }
      const out = []
      let p = end
      for (let i = 0; i < n; i++) {
        const r = parseReply(buf, p)
        if (!r) return null
        out.push(r.value)
        p = r.end
      }
      return { value: out, end: p }
    }
    default:
      throw new Error(`unexpected reply from Redis (${JSON.stringify(type)})`)
  }
}

const text = (b) => (Buffer.isBuffer(b) ? b.toString('utf8') : b)

/** A flat HGETALL reply → [[field string, value Buffer]]. */
function pairs(reply) {
  const out = []
  for (let i = 0; i + 1 < reply.length; i += 2) out.push([text(reply[i]), reply[i + 1]])
  return out
}

/** A prefix as a SCAN MATCH pattern matching it literally. */
const globEscape = (s) => s.replace(/[\\*?[\]^]/g, '\\$&')

/** Decodes one key part written by tollgate's key encoding (src/store/key.rs). */
function unescapePart(s) {
  return s.replace(/%(25|7B|7D|3A|u[0-9A-Fa-f]{4})/g, (_, c) => {
    if (c[0] === 'u') return String.fromCharCode(parseInt(c.slice(1), 16))
    return { 25: '%', '7B': '{', '7D': '}', '3A': ':' }[c]
  })
}

// ---- reading the state ------------------------------------------------------------------

/** Reads everything the report shows. Rejects when Redis cannot be reached or fails. */
async function collect(o) {
  const r = await Resp.connect(o.url, o.timeoutMs)
  try {
    if (o.url.password) await (o.url.username ? r.call('AUTH', o.url.username, o.url.password) : r.call('AUTH', o.url.password))
    if (o.url.db) await r.call('SELECT', o.url.db)
    const t0 = process.hrtime.bigint()
    const pong = await r.call('PING')
    const pingMs = Number(process.hrtime.bigint() - t0) / 1e6
    const info = parseInfo(text(await r.call('INFO')))
    const [sec, usec] = (await r.call('TIME')).map((b) => Number(text(b)))
    const now = o.now ?? sec * 1000 + Math.floor(usec / 1000)
    const health = {
      url: o.url.shown,
      ping: pong,
      pingMs: Math.round(pingMs * 100) / 100,
      version: info.valkey_version || info.redis_version || null,
      maxmemoryPolicy: info.maxmemory_policy || null,
      usedMemory: info.used_memory_human || null,
      keys: await r.call('DBSIZE'),
      warnings: [],
    }
    if (info.cluster_enabled === '1') {
      health.warnings.push('a Redis Cluster node: this shows the keys of this node only; run it against each master')
    }
    if (health.maxmemoryPolicy && health.maxmemoryPolicy !== 'noeviction') {
      health.warnings.push(`maxmemory-policy is ${health.maxmemoryPolicy}: Redis may evict limits and budgets under memory pressure (use noeviction)`)
    }

    // Every key under each prefix (and under `{prefix}`, the CostTracker's hash tag), at most maxKeys.
    const keys = new Set()
    let capped = false
    const patterns = []
    for (const p of o.prefixes) {
      patterns.push(globEscape(p) + '*')
      if (!p.includes('{')) patterns.push(globEscape(`{${p}`) + '*')
    }
    scan: for (const pattern of patterns) {
      let cursor = '0'
      do {
        const [next, batch] = await r.call('SCAN', cursor, 'MATCH', pattern, 'COUNT', 1000)
        cursor = text(next)
        for (const k of batch) {
          if (keys.size >= o.maxKeys) {
            capped = true
            break scan
          }
          keys.add(text(k))
        }
      } while (cursor !== '0')
    }

    // Guard meters `<prefix>{g<id>:<scope>}:m` and quota scopes `<prefix>{q<scope>}:k`: the
    // class's prefix is what precedes the tag, so `--prefix app:` finds `app:guard:{g…}:m` too.
    const guard = []
    const quota = []
    const costBases = new Set()
    for (const p of o.prefixes) costBases.add(p.includes('{') ? p : `{${p}}`)
    // On a Cluster node, a key of another node's slot is left out (that node shows it).
    const elsewhere = (e) => {
      if (e instanceof ReplyError && /^(MOVED|ASK) /.test(e.message)) return []
      throw e
    }
    const hgetall = (k) => r.call('HGETALL', k)
    // A meter's counters, and its holds only when it has any: its window entries (`e<n>`, up to
    // a limit's max of them) are never read.
    const meterFields = async (k) => {
      const [t, p, c, xe] = await r.call('HMGET', k, 't', 'p', 'c', 'xe')
      if (t === null && p === null && c === null) return []
      const out = ['t', t ?? '0', 'p', p ?? '0', 'c', c ?? '0']
      if (xe !== null && text(xe) !== '-1') {
        let cursor = '0'
        do {
          const [next, fields] = await r.call('HSCAN', k, cursor, 'MATCH', 'h*', 'COUNT', 1000)
          cursor = text(next)
          out.push(...fields)
        } while (cursor !== '0')
      }
      return out
    }
    const reads = []
    for (const k of [...keys].sort()) {
      const g = k.endsWith('}:m') ? k.lastIndexOf('{g') : -1
      const q = k.endsWith('}:k') ? k.lastIndexOf('{q') : -1
      const cost = /^(.*)(?:day:\d{4}-\d{2}-\d{2}|month:\d{4}-\d{2})(?::tags)?$/.exec(k)
      if (g >= 0) {
        const inner = k.slice(g + 2, -3)
        const colon = inner.indexOf(':')
        if (colon < 0) continue
        const [prefix, limit, scope] = [k.slice(0, g), unescapePart(inner.slice(0, colon)), unescapePart(inner.slice(colon + 1))]
        reads.push([k, meterFields, (h) => guard.push(readMeter(h, prefix, limit, scope, now, o.max))])
      } else if (q >= 0) {
        const [prefix, scope] = [k.slice(0, q), unescapePart(k.slice(q + 2, -3))]
        reads.push([k, hgetall, (h) => quota.push(readQuota(h, prefix, scope))])
      } else if (cost && cost[1] !== '') costBases.add(cost[1])
    }
    // Pipelined, a few hundred at a time.
    for (let i = 0; i < reads.length; i += 500) {
      const batch = reads.slice(i, i + 500)
      const replies = await Promise.all(batch.map(([k, read]) => read(k).catch(elsewhere)))
      batch.forEach(([, , use], j) => replies[j].length && use(replies[j]))
    }

    // Each CostTracker's buckets of today and this month (UTC, on the server's clock).
    const budgets = []
    const iso = new Date(now).toISOString()
    const day = iso.slice(0, 10)
    const month = iso.slice(0, 7)
    for (const base of [...costBases].sort()) {
      const [d, dt, m, mt] = await Promise.all(
        [`${base}day:${day}`, `${base}day:${day}:tags`, `${base}month:${month}`, `${base}month:${month}:tags`].map((k) => hgetall(k).catch(elsewhere)),
      )
      if (!d.length && !m.length) continue
      budgets.push({
        prefix: /^\{[^{}]*\}$/.test(base) ? base.slice(1, -1) : base,
        daily: bucket(d, dt, day, o.dailyBudget, now),
        monthly: bucket(m, mt, month, o.monthlyBudget, now),
      })
    }

    // Busiest first, at most `top` scopes per limit.
    guard.sort((a, b) => a.limit.localeCompare(b.limit) || b.used - a.used || a.scope.localeCompare(b.scope))
    const shown = []
    const perLimit = new Map()
    const hidden = {}
    for (const g of guard) {
      const id = `${g.prefix}\0${g.limit}`
      const n = perLimit.get(id) || 0
      perLimit.set(id, n + 1)
      if (n < o.top) shown.push(g)
      else hidden[g.limit] = (hidden[g.limit] || 0) + 1
    }
    quota.sort((a, b) => a.scope.localeCompare(b.scope))

    return {
      now: iso,
      store: health,
      scan: { prefixes: o.prefixes, keys: keys.size, maxKeys: o.maxKeys, capped, cluster: info.cluster_enabled === '1' },
      budgets,
      guard: shown,
      guardHidden: hidden,
      quota,
    }
  } finally {
    r.close()
  }
}

function parseInfo(s) {
  const out = {}
  for (const line of s.split('\r\n')) {
    const i = line.indexOf(':')
    if (i > 0 && line[0] !== '#') out[line.slice(0, i)] = line.slice(i + 1)
  }
  return out
}

/** A guard meter's HASH (guard.lua's header) → its use. The limit's kind and max are not stored. */
function readMeter(reply, prefix, limit, scope, now, maxes) {
  const f = new Map(pairs(reply))
  const num = (name) => Number(text(f.get(name) ?? '0')) || 0
  let holds = 0
  let held = 0
  for (const [name, v] of f) {
    if (name[0] !== 'h') continue
    const [amount, , expires] = text(v).split(' ').map(Number)
    if (expires > now) {
      holds++
      held += amount
    }
  }
  const m = { prefix, limit, scope, used: num('t'), holds, held, entries: num('c'), period: f.has('p') ? num('p') : null, max: null, remaining: null, unit: null }
  const known = maxes[limit]
  if (known) {
    if ('usd' in known) {
      m.unit = 'usd'
      m.used = m.used / NANO
      m.held = m.held / NANO
      m.max = known.usd
    } else m.max = known.n
    m.remaining = Math.max(0, Math.round((m.max - m.used) * NANO) / NANO)
  }
  return m
}

/** A Quota scope's key HASH → per key: requests and tokens today and in the TPM window. */
function readQuota(reply, prefix, scope) {
  const keys = []
  for (const [name, raw] of pairs(reply)) {
    // struct '<ddddddddddddddddi4i4' then the day text (quota.lua's encode_meta)
    if (!Buffer.isBuffer(raw) || raw.length < 136) continue
    const d = (i) => raw.readDoubleLE(i * 8)
    const dayLen = raw.readInt32LE(128)
    keys.push({
      key: name,
      day: dayLen > 0 ? raw.toString('utf8', 136, 136 + dayLen) : null,
      requestsToday: d(1),
      tokensToday: d(2),
      windowTokens: d(11),
      windowRequests: d(12),
    })
  }
  keys.sort((a, b) => a.key.localeCompare(b.key))
  return { prefix, scope, keys }
}

/** A CostTracker bucket (HASH `s`, `h:<id>` holds) and its tags → totals in USD. */
function bucket(reply, tagsReply, period, budget, now) {
  const f = pairs(reply)
  let spentNano = 0
  let reservedNano = 0
  for (const [name, v] of f) {
    if (name === 's') spentNano = Number(text(v))
    else if (name.startsWith('h:')) {
      const [nano, expires] = text(v).split(':').map(Number)
      if (expires > now) reservedNano += nano
    }
  }
  const byTag = {}
  for (const [field, v] of pairs(tagsReply)) {
    const eq = field.indexOf('=')
    if (eq < 0) continue
    ;(byTag[field.slice(0, eq)] ??= {})[field.slice(eq + 1)] = Number(text(v)) / NANO
  }
  const spent = spentNano / NANO
  const reserved = reservedNano / NANO
  return {
    period,
    spent,
    reserved,
    budget,
    remaining: budget === null ? null : Math.max(0, (Math.round(budget * NANO) - spentNano - reservedNano) / NANO),
    byTag,
  }
}

// ---- printing -----------------------------------------------------------------------------

function painter(enabled) {
  const wrap = (a, b) => (s) => (enabled ? `\x1b[${a}m${s}\x1b[${b}m` : String(s))
  return { bold: wrap(1, 22), dim: wrap(2, 22), red: wrap(31, 39), yellow: wrap(33, 39), green: wrap(32, 39) }
}

const visible = (s) => String(s).replace(/\x1b\[\d+m/g, '')
// Names come from the store: never let one move the cursor or change colours.
const safe = (s) => String(s).replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)

/** Rows of cells → lines with aligned columns (numbers right-aligned). */
function table(head, rows, c) {
  const all = [head, ...rows]
  const width = head.map((_, i) => Math.max(...all.map((r) => visible(r[i]).length)))
  const right = head.map((_, i) => rows.length > 0 && rows.every((r) => /^[-$0-9.,%]+$|^–$/.test(visible(r[i]))))
  const line = (r) =>
    r
      .map((cell, i) => {
        const pad = ' '.repeat(width[i] - visible(cell).length)
        return right[i] ? pad + cell : cell + pad
      })
      .join('  ')
      .trimEnd()
  return [c.bold(line(head)), ...rows.map(line)]
}

const usd = (n) => (n === null ? '–' : `$${n.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 6 })}`)
const int = (n) => (n === null ? '–' : n.toLocaleString('en-US', { maximumFractionDigits: 6 }))

function pct(used, max, c) {
  if (max === null || max === undefined) return '–'
  const p = max === 0 ? (used > 0 ? 100 : 0) : (used / max) * 100
  const s = `${p.toFixed(p < 10 ? 1 : 0)}%`
  return p >= 100 ? c.red(s) : p >= 80 ? c.yellow(s) : c.green(s)
}

/**
 * A period meter's period, named when it is the current one: the day number since 1970 or the
 * month number (year × 12 + month - 1) the caller's calendar gave it (±1 day for time zones).
 * A meter of another period holds a stale total: its next call starts from zero.
 */
function period(p, nowIso) {
  if (!p) return '–'
  const now = Date.parse(nowIso)
  const dayNo = Math.floor(now / 86_400_000)
  const d = new Date(now)
  if (p === d.getUTCFullYear() * 12 + d.getUTCMonth()) return 'this month'
  if (Math.abs(p - dayNo) <= 1) return p === dayNo ? 'today' : `day ${p - dayNo > 0 ? '+' : ''}${p - dayNo}`
  return `#${p} (past)`
}

/** The report as text lines. */
function render(s, c) {
  const out = []
  const st = s.store
  out.push(c.bold('Store') + `  ${st.url}  ${c.green(st.ping)} in ${st.pingMs} ms  Redis ${st.version ?? '?'}  ${st.keys.toLocaleString('en-US')} keys  memory ${st.usedMemory ?? '?'}  maxmemory-policy ${st.maxmemoryPolicy === 'noeviction' ? st.maxmemoryPolicy : c.yellow(st.maxmemoryPolicy ?? '?')}`)
  for (const w of st.warnings) out.push(c.yellow(`warning: ${w}`))
  out.push(`Read ${s.scan.keys.toLocaleString('en-US')} keys under ${s.scan.prefixes.map(safe).join(', ')} at ${s.now}` + (s.scan.capped ? c.yellow(` (capped at ${s.scan.maxKeys.toLocaleString('en-US')} keys: totals below are partial; raise --max-keys)`) : ''))

  out.push('', c.bold('Budgets (CostTracker)'))
  if (s.budgets.length === 0) out.push(c.dim('  no CostTracker spend this day or month under these prefixes'))
  else {
    const rows = []
    for (const b of s.budgets) {
      for (const [label, x] of [['day', b.daily], ['month', b.monthly]]) {
        rows.push([safe(b.prefix), `${label} ${x.period}`, usd(x.spent), usd(x.reserved), usd(x.budget), usd(x.remaining), pct(x.spent + x.reserved, x.budget, c)])
      }
    }
    out.push(...table(['prefix', 'period', 'spent', 'reserved', 'budget', 'left', 'used'], rows, c).map((l) => '  ' + l))
    const tagRows = []
    for (const b of s.budgets) {
      for (const [key, values] of Object.entries(b.monthly.byTag)) {
        for (const [value, month] of Object.entries(values).sort((x, y) => y[1] - x[1])) {
          tagRows.push([safe(b.prefix), safe(`${key}=${value}`), usd(b.daily.byTag[key]?.[value] ?? 0), usd(month)])
        }
      }
    }
    if (tagRows.length) out.push('', ...table(['prefix', 'tag', 'today', 'month'], tagRows, c).map((l) => '  ' + l))
  }

  out.push('', c.bold('Guard limits (busiest scopes)'))
  if (s.guard.length === 0) out.push(c.dim('  no guard meters under these prefixes'))
  else {
    const rows = s.guard.map((g) => {
      const money = g.unit === 'usd'
      return [safe(g.limit), safe(g.scope), money ? usd(g.used) : int(g.used), money ? usd(g.max) : int(g.max), money ? usd(g.remaining) : int(g.remaining), pct(g.used, g.max, c), int(g.holds), period(g.period, s.now)]
    })
    out.push(...table(['limit', 'scope', 'used', 'max', 'left', 'use', 'in flight', 'period'], rows, c).map((l) => '  ' + l))
    for (const [limit, n] of Object.entries(s.guardHidden)) out.push(c.dim(`  … and ${n} more scopes of ${safe(limit)} (--top)`))
    const unknown = s.guard.some((g) => g.max === null)
    out.push(c.dim(`  used: as of each meter's last call${unknown ? '; max: give --max ID=N (usd limits count nano-dollars unless --max ID=$N)' : ''}`))
  }

  out.push('', c.bold('Quota keys'))
  if (s.quota.length === 0) out.push(c.dim('  no quota scopes under these prefixes'))
  else {
    const rows = []
    for (const q of s.quota) for (const k of q.keys) rows.push([safe(q.scope), safe(k.key), k.day ?? '–', int(k.requestsToday), int(k.tokensToday), int(k.windowRequests), int(k.windowTokens)])
    out.push(...table(['scope', 'key', 'day', 'requests', 'tokens', 'window req', 'window tokens'], rows, c).map((l) => '  ' + l))
  }
  return out
}

/** Runs `tollgate status` with these arguments. Resolves to the exit code. */
async function main(argv, { stdout = process.stdout, stderr = process.stderr, env = process.env } = {}) {
  let o
  try {
    o = parseArgs(argv, env)
  } catch (e) {
    if (!(e instanceof UsageError)) throw e
    stderr.write(`tollgate status: ${e.message}\n` + (e.usage ? `\n${USAGE}\n` : ''))
    return 2
  }
  if (o.help) {
    stdout.write(USAGE + '\n')
    return 0
  }
  let s
  try {
    s = await collect(o)
  } catch (e) {
    const why = e instanceof ReplyError ? `Redis answered ${e.message}` : e.message || e.code || String(e)
    stderr.write(`tollgate status: cannot read Redis at ${o.url.shown}: ${redact(why)}\n`)
    return 1
  }
  if (o.json) stdout.write(JSON.stringify(s) + '\n')
  else stdout.write(render(s, painter(Boolean(stdout.isTTY) && !('NO_COLOR' in env && env.NO_COLOR !== ''))).join('\n') + '\n')
  return 0
}

module.exports = { main, parseArgs, parseRedisUrl, collect, render, USAGE }
