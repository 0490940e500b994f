'use strict'
// tollgate/dashboard: one self-contained page (inline CSS, inline script, an SVG chart drawn
// here) and the JSON it polls, served by a plain node:http handler. Read-only. The shared state
// in Redis is read by `tollgate status`'s readers (lib/status.js: budgets of every tracker,
// guard meters, quota scopes, the server's health); the objects handed in add what only they
// know: budgets, spend history (CostTracker.history), limits' maxima, quota keys' headroom
// (Quota.check), cache hit rates, failure-policy state, and the refusals this process saw.

const { randomBytes } = require('node:crypto')
const { collect, parseRedisUrl } = require('./status')
const { Guard } = require('./guard')
const { costOf } = require('./cost')
const { countMessageTokens } = require('./tokens')
const { invalidArg } = require('./errors')
const v = require('./validate')

const MAX_REFUSALS = 50
const MAX_WATCHED_SCOPES = 256
const DEFAULT_DAYS = 14
const DEFAULT_HOURS = 24
const OPTIONS = ['redis', 'prefixes', 'trackers', 'guards', 'quotas', 'caches', 'stores', 'authorize', 'path', 'refreshMs', 'top', 'title', 'now']

const list = (x, name) => {
  if (x === undefined) return []
  const a = Array.isArray(x) ? x : [x]
  for (const [i, o] of a.entries()) if (o === null || typeof o !== 'object') throw invalidArg(`options.${name}[${i}] must be an object, got ${v.describe(o)}`)
  return a
}

const loopback = (addr) => typeof addr === 'string' && (addr === '::1' || /^(::ffff:)?127\./.test(addr))

/** What one guard's limits allow, by id: `{ measure, max }` (max in USD for a usd limit). */
function maxima(guard) {
  const out = {}
  for (const p of guard.policy) {
    for (const [k, val] of Object.entries(p)) if (k !== 'id' && k !== 'per' && k !== 'timeZone') out[p.id] = { measure: k, max: val, per: p.per ?? null }
  }
  return out
}

/** The estimated cost of the call a cache hit avoided: its input and its output allowance. */
function avoidedUsd(request, guard) {
  try {
    const input = typeof request.tokens === 'number' ? request.tokens : Array.isArray(request.messages) ? countMessageTokens(request.messages, request.model, { fallback: 'o200k_base' }) : 0
    const output = typeof request.maxTokens === 'number' ? request.maxTokens : guard.defaultMaxTokens
    return costOf({ inputTokens: input, outputTokens: output }, request.model)
  } catch {
    return 0
  }
}

class Watch {
  constructor(guards, now) {
    this.refusals = []
    this.saved = 0
    this.hits = 0
    this.scopes = guards.map(() => new Map())
    guards.forEach((g, i) => {
      Guard.observe(g, (d, scopes, request, ctx) => {
        if (d.cached !== null && d.cached !== undefined) {
          this.hits++
          this.saved += avoidedUsd(request, g)
          return
        }
        if (!d.ok) {
          this.refusals.push({ at: new Date(now()).toISOString(), guard: g.prefix, limit: d.limit, scope: scopes[d.limit] ?? null, retryAfterMs: d.retryAfterMs, reason: d.reason ?? null, model: request && typeof request.model === 'string' ? request.model : null })
          if (this.refusals.length > MAX_REFUSALS) this.refusals.shift()
        }
        // The scopes this process met, newest last, to show their use (in-process stores).
        const seen = this.scopes[i]
        const key = JSON.stringify(scopes)
        seen.delete(key)
        seen.set(key, { ctx, scopes })
        if (seen.size > MAX_WATCHED_SCOPES) seen.delete(seen.keys().next().value)
      })
    })
  }
}

/** A short message for a failed read (never a stack). */
const why = (e) => String((e && (e.message || e.code)) || e).split('\n')[0].slice(0, 200)

async function readData(c, days, hours) {
  const now = c.now()
  const out = {
    now: new Date(now).toISOString(),
    refreshMs: c.refreshMs,
    title: c.title,
    source: c.redis ? 'redis' : 'process',
    store: null,
    stores: [],
    budgets: [],
    guard: [],
    guardHidden: {},
    quota: [],
    quotaScopes: [],
    caches: [],
    refusals: c.watch.refusals.slice().reverse(),
    classes: [],
    errors: [],
  }
  const maxOf = {}
  for (const g of c.guards) Object.assign(maxOf, maxima(g))

  if (c.redis) {
    const max = {}
    for (const [id, m] of Object.entries(maxOf)) max[id] = m.measure === 'usd' ? { usd: m.max } : { n: m.max }
    try {
      const s = await collect({ url: c.redis, prefixes: c.prefixes, max, top: c.top, maxKeys: 10_000, timeoutMs: 2_000, now: null })
      out.store = s.store
      out.scan = s.scan
      out.guard = s.guard.map((g) => ({ ...g, measure: maxOf[g.limit]?.measure ?? null }))
      out.guardHidden = s.guardHidden
      out.quotaScopes = s.quota
      const mine = new Set(c.trackers.map((t) => t.prefix))
      for (const b of s.budgets) if (!mine.has(b.prefix)) out.budgets.push({ prefix: b.prefix, daily: b.daily, monthly: b.monthly, history: null })
    } catch (e) {
      out.store = { url: c.redis.shown, error: why(e) }
    }
  } else {
    // In-process stores: the scopes this process met, each limit's use read with peek().
    for (const [i, g] of c.guards.entries()) {
      const limits = maxima(g)
      const rows = new Map()
      for (const { ctx, scopes } of c.watch.scopes[i].values()) {
        let remaining
        try {
          remaining = (await g.peek(ctx)).remaining
        } catch (e) {
          out.errors.push(`guard ${g.prefix}: ${why(e)}`)
          break
        }
        for (const [id, left] of Object.entries(remaining)) {
          const l = limits[id]
          const scope = scopes[id]
          if (!l || scope === null || scope === undefined) continue
          const used = Math.max(0, Math.round((l.max - left) * 1e9) / 1e9)
          rows.set(`${id}\0${scope}`, { prefix: g.prefix, limit: id, scope, used, max: l.max, remaining: left, unit: l.measure === 'usd' ? 'usd' : null, measure: l.measure, holds: null, period: null })
        }
      }
      const byLimit = new Map()
      for (const r of rows.values()) (byLimit.get(r.limit) || byLimit.set(r.limit, []).get(r.limit)).push(r)
      for (const [id, rs] of byLimit) {
        rs.sort((a, b) => b.used / (b.max || 1) - a.used / (a.max || 1) || a.scope.localeCompare(b.scope))
        out.guard.push(...rs.slice(0, c.top))
        if (rs.length > c.top) out.guardHidden[id] = rs.length - c.top
      }
    }
  }

  for (const t of c.trackers) {
    try {
      const [totals, history] = await Promise.all([t.totals(), t.history({ days, hours })])
      out.budgets.push({ prefix: t.prefix, daily: totals.daily, monthly: totals.monthly, history })
    } catch (e) {
      out.errors.push(`CostTracker ${t.prefix}: ${why(e)}`)
    }
  }

  for (const q of c.quotas) {
    try {
      const r = await q.quota.check(q.scope, q.keys, 0)
      out.quota.push({
        scope: q.scope,
        keys: r.checks.map((k) => ({ key: k.key, ok: k.ok, reason: k.reason ?? null, waitMs: k.waitMs, cooldownMs: k.rpmMs, tokenPct: k.tokenPct, dailyUsed: k.dailyUsed, dailyCap: k.dailyCap, dailyLeft: k.dailyLeft, dailyPct: k.dailyPct })),
      })
    } catch (e) {
      out.errors.push(`Quota ${q.scope}: ${why(e)}`)
    }
  }

  for (const [i, cache] of c.caches.entries()) {
    try {
      const s = await cache.stats()
      out.caches.push({ name: cache.constructor.name + (c.caches.length > 1 ? ` #${i + 1}` : ''), prefix: cache.prefix ?? null, hits: s.hits, misses: s.misses, hitRate: s.hitRate, entries: s.entries ?? null })
    } catch (e) {
      out.errors.push(`cache: ${why(e)}`)
    }
  }
  out.savings = { cachedCalls: c.watch.hits, estimatedUsd: Math.round(c.watch.saved * 1e9) / 1e9 }

  for (const s of c.stores) {
    if (typeof s.health === 'function') out.stores.push(s.health())
  }
  const classes = [...c.guards.map((g) => ['Guard', g]), ...c.trackers.map((t) => ['CostTracker', t]), ...c.quotas.map((q) => ['Quota', q.quota])]
  for (const [kind, o] of classes) {
    const s = o.stats()
    out.classes.push({ kind, prefix: o.prefix ?? null, decisions: s.decisions, refused: s.refused, policy: s.policy, storeStatus: s.storeStatus, pending: s.pending, fallbacks: s.fallbacks, errors: s.errors })
  }
  return out
}

/** A whole query value as an integer in [min, max], or a 400. */
function intParam(q, name, min, max, fallback) {
  const s = q.get(name)
  if (s === null) return fallback
  if (!/^\d{1,4}$/.test(s) || Number(s) < min || Number(s) > max) throw new BadRequest(`${name} must be an integer from ${min} to ${max}`)
  return Number(s)
}

class BadRequest extends Error {}

function send(res, status, type, body, extra) {
  res.writeHead(status, {
    'content-type': type,
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    ...extra,
  })
  res.end(body)
}

const text = (res, status, body, extra) => send(res, status, 'text/plain; charset=utf-8', body + '\n', extra)

/**
 * A request handler `(req, res)` serving the dashboard page at the path given (default `/`)
 * and its data at `data.json` beside it. See docs/dashboard.md.
 */
function dashboard(options) {
  const o = v.options(options, 'options')
  v.knownKeys(o, OPTIONS, 'options')
  let redis = null
  if (o.redis !== undefined) {
    if (typeof o.redis !== 'string') throw invalidArg(`options.redis must be a redis:// URL, got ${v.describe(o.redis)}`)
    try {
      redis = parseRedisUrl(o.redis)
    } catch (e) {
      throw invalidArg(`options.redis: ${e.message}`)
    }
  }
  const prefixes = o.prefixes === undefined ? null : o.prefixes
  if (prefixes !== null && (!Array.isArray(prefixes) || prefixes.some((p) => typeof p !== 'string' || p === ''))) throw invalidArg('options.prefixes must be an array of non-empty strings')
  const authorize = o.authorize === undefined ? null : v.fn(o.authorize, 'options.authorize')
  const path = o.path === undefined ? '' : v.string(o.path, 'options.path').replace(/\/+$/, '')
  if (path !== '' && !path.startsWith('/')) throw invalidArg(`options.path must start with '/', got ${JSON.stringify(path)}`)
  const refreshMs = o.refreshMs === undefined ? 5_000 : v.integer(o.refreshMs, 'options.refreshMs', 500, 3_600_000)
  const top = o.top === undefined ? 10 : v.integer(o.top, 'options.top', 1, 1_000)
  const title = o.title === undefined ? 'tollgate' : v.string(o.title, 'options.title')
  const now = o.now === undefined ? Date.now : v.fn(o.now, 'options.now')
  const guards = list(o.guards, 'guards')
  for (const g of guards) if (!(g instanceof Guard)) throw invalidArg('options.guards must hold Guard objects')
  const trackers = list(o.trackers, 'trackers')
  for (const t of trackers) if (typeof t.history !== 'function' || typeof t.totals !== 'function') throw invalidArg('options.trackers must hold CostTracker objects')
  const quotas = list(o.quotas, 'quotas')
  for (const q of quotas) {
    if (!q.quota || typeof q.quota.check !== 'function' || typeof q.scope !== 'string' || !Array.isArray(q.keys)) throw invalidArg('options.quotas must hold { quota, scope, keys } objects')
  }
  const caches = list(o.caches, 'caches')
  for (const x of caches) if (typeof x.stats !== 'function') throw invalidArg('options.caches must hold ResponseCache or SemanticCache objects')
  const stores = list(o.stores, 'stores')
  const c = {
    redis,
    prefixes: prefixes ?? [...new Set(['tollgate:guard:', 'tollgate:cost:', 'tollgate:quota:', ...guards.map((g) => g.prefix), ...trackers.map((t) => t.prefix)])],
    guards,
    trackers,
    quotas,
    caches,
    stores,
    refreshMs,
    top,
    title,
    now,
    watch: new Watch(guards, now),
  }

  return async function tollgateDashboard(req, res) {
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD') return text(res, 405, 'method not allowed: the dashboard is read-only (GET)', { allow: 'GET, HEAD' })
      if (authorize !== null) {
        let ok = false
        try {
          ok = await authorize(req)
        } catch {
          ok = false
        }
        if (!ok) return text(res, 401, 'unauthorized')
      } else if (!loopback(req.socket && req.socket.remoteAddress) || req.headers['x-forwarded-for'] !== undefined || req.headers.forwarded !== undefined) {
        return text(res, 403, 'forbidden: without an authorize(req) option the dashboard answers only requests made from this machine')
      }
      let url
      try {
        url = new URL(req.url || '/', 'http://localhost')
      } catch {
        return text(res, 400, 'bad request: malformed URL')
      }
      let rest = url.pathname
      if (path !== '') {
        if (rest !== path && !rest.startsWith(path + '/')) return text(res, 404, 'not found')
        rest = rest.slice(path.length)
      }
      for (const k of url.searchParams.keys()) if (k !== 'days' && k !== 'hours') return text(res, 400, `bad request: unknown query parameter (use days and hours)`)
      const days = intParam(url.searchParams, 'days', 1, 400, DEFAULT_DAYS)
      const hours = intParam(url.searchParams, 'hours', 1, 48, DEFAULT_HOURS)
      const head = req.method === 'HEAD'
      if (rest === '' || rest === '/' || rest === '/index.html') {
        const nonce = randomBytes(16).toString('base64')
        const body = page(nonce, title)
        return send(res, 200, 'text/html; charset=utf-8', head ? undefined : body, {
          'content-security-policy': `default-src 'none'; style-src 'nonce-${nonce}'; script-src 'nonce-${nonce}'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
          'x-frame-options': 'DENY',
        })
      }
      if (rest === '/data.json') {
        const data = await readData(c, days, hours)
        // `<` escaped: the JSON can never close a script or open a tag wherever it lands.
        return send(res, 200, 'application/json; charset=utf-8', head ? undefined : JSON.stringify(data).replace(/</g, '\\u003c'))
      }
      return text(res, 404, 'not found')
    } catch (e) {
      if (e instanceof BadRequest) return text(res, 400, `bad request: ${e.message}`)
      if (!res.headersSent) return text(res, 500, 'internal error: the dashboard could not read the state')
      res.end()
    }
  }
}

/** The page: markup, style and script inline (one request, no CDN), data rendered as text only. */
function page(nonce, title) {
  const esc = (s) => s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`)
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">
<title>${esc(title)} · dashboard</title>
<style nonce="${nonce}">${CSS}</style></head>
<body><header><h1>${esc(title)}</h1><span id="status" class="muted">loading…</span></header>
<main id="app"></main>
<script nonce="${nonce}">${SCRIPT}</script></body></html>
`
}

const CSS = `
:root{--bg:#f6f7f9;--card:#fff;--ink:#1c2330;--muted:#667085;--line:#e4e7ec;--ok:#12b76a;--warn:#f79009;--bad:#f04438;--bar:#2e90fa;color-scheme:light}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:var(--bg);color:var(--ink)}
header{display:flex;gap:12px;align-items:baseline;flex-wrap:wrap;padding:14px 16px;background:#101828;color:#fff}
h1{font-size:18px;margin:0}header .muted{color:#98a2b3}
main{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(440px,100%),1fr));gap:12px;padding:12px;max-width:1400px;margin:0 auto}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:12px 14px;min-width:0}
section.wide{grid-column:1/-1}h2{font-size:13px;margin:10px 0 6px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}section>h2:first-child{margin-top:0}h2 .name{text-transform:none;letter-spacing:0;color:var(--ink)}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(300px,100%),1fr));gap:8px 20px}
table{width:100%;border-collapse:collapse;font-variant-numeric:tabular-nums}th,td{text-align:left;padding:4px 6px;border-bottom:1px solid var(--line);vertical-align:top;overflow-wrap:break-word}
th{font-weight:600;color:var(--muted);font-size:12px;white-space:nowrap}td.n,th.n{text-align:right;white-space:nowrap}
.muted{color:var(--muted)}.big{font-size:22px;font-weight:650}.ok{color:var(--ok)}.warn{color:var(--warn)}.bad{color:var(--bad)}
.meter{height:8px;background:var(--line);border-radius:4px;overflow:hidden;margin:4px 0 8px}.meter>i{display:block;height:100%;background:var(--ok)}
.meter>i.warn{background:var(--warn)}.meter>i.bad{background:var(--bad)}
.kpis{display:flex;gap:18px;flex-wrap:wrap}.kpis>div{min-width:130px}
svg{width:100%;height:auto;display:block}svg text{font-size:10px;fill:var(--muted)}svg .bar{fill:var(--bar)}svg .budget{stroke:var(--bad);stroke-dasharray:4 3}
.scroll{overflow-x:auto}
`

// The browser side: fetch data.json, rebuild the sections with DOM calls (textContent only: a
// scope named <script> is text), draw the chart as SVG elements.
const SCRIPT = `
'use strict';
(function () {
  var app = document.getElementById('app'), status = document.getElementById('status');
  var base = location.pathname.replace(/\\/(index\\.html)?$/, '') + '/data.json' + location.search;
  var SVG = 'http://www.w3.org/2000/svg';
  function el(tag, attrs, kids) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) if (attrs[k] !== undefined && attrs[k] !== null) e.setAttribute(k, attrs[k]);
    (kids || []).forEach(function (c) { if (c !== null && c !== undefined) e.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c))); });
    return e;
  }
  function svg(tag, attrs, kids) {
    var e = document.createElementNS(SVG, tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    (kids || []).forEach(function (c) { e.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c))); });
    return e;
  }
  function usd(n) {
    if (n === null || n === undefined) return '–';
    var a = Math.abs(n), d = a === 0 ? 2 : a < 0.01 ? 6 : a < 1 ? 4 : 2;
    return '$' + n.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
  }
  function num(n) { return n === null || n === undefined ? '–' : Number(n).toLocaleString('en-US', { maximumFractionDigits: 3 }); }
  function pct(p) { return p === null || p === undefined || !isFinite(p) ? '–' : (p * 100).toFixed(p < 0.1 ? 1 : 0) + '%'; }
  function level(p) { return p >= 1 ? 'bad' : p >= 0.8 ? 'warn' : 'ok'; }
  function meter(p) { return el('div', { class: 'meter' }, [el('i', { class: level(p), style: null, 'data-w': Math.min(100, p * 100).toFixed(1) })]); }
  function section(title, kids, wide, name) { return el('section', { class: wide ? 'wide' : null }, [el('h2', {}, [title, name ? el('span', { class: 'name' }, [' · ' + name]) : null])].concat(kids)); }
  function table(head, rows, numeric) {
    var tr = el('tr', {}, head.map(function (h, i) { return el('th', { class: numeric && numeric[i] ? 'n' : null }, [h]); }));
    var body = rows.map(function (r) { return el('tr', {}, r.map(function (c, i) { return el('td', { class: numeric && numeric[i] ? 'n' : null }, [c]); })); });
    return el('div', { class: 'scroll' }, [el('table', {}, [el('thead', {}, [tr]), el('tbody', {}, body)])]);
  }
  function empty(msg) { return el('p', { class: 'muted' }, [msg]); }

  function chart(points, key, budget, label) {
    var W = 640, H = 180, L = 48, B = 22, T = 8, n = points.length;
    var top = Math.max.apply(null, points.map(function (p) { return p.spent; }).concat([1e-9]));
    // The budget line only when it is on the bars' scale (within 4× the highest bar).
    if (budget && budget > top * 4) budget = null;
    var max = Math.max(top, budget || 0) * 1.05;
    var s = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'aria-label': label });
    var y = function (v) { return T + (H - T - B) * (1 - v / max); };
    for (var g = 0; g <= 4; g++) {
      var v = (max * g) / 4;
      s.appendChild(svg('line', { x1: L, x2: W, y1: y(v), y2: y(v), stroke: '#e4e7ec' }));
      s.appendChild(svg('text', { x: L - 4, y: y(v) + 3, 'text-anchor': 'end' }, [usd(v)]));
    }
    var bw = (W - L) / Math.max(n, 1);
    points.forEach(function (p, i) {
      var h = (H - T - B) * (p.spent / max);
      var r = svg('rect', { class: 'bar', x: L + i * bw + bw * 0.15, y: y(p.spent), width: Math.max(1, bw * 0.7), height: Math.max(0, h) });
      r.appendChild(svg('title', {}, [p[key] + ': ' + usd(p.spent)]));
      s.appendChild(r);
      var every = Math.ceil(n / 8);
      if (i % every === 0 || i === n - 1) s.appendChild(svg('text', { x: L + i * bw + bw / 2, y: H - 6, 'text-anchor': 'middle' }, [key === 'date' ? p.date.slice(5) : p.hour.slice(11) + 'h']));
    });
    if (budget) s.appendChild(svg('line', { class: 'budget', x1: L, x2: W, y1: y(budget), y2: y(budget) }));
    return s;
  }

  function budgets(d) {
    var out = [];
    if (!d.budgets.length) return [section('Spend', [empty('No CostTracker spend yet.')], true)];
    d.budgets.forEach(function (b) {
      function kpi(name, p, testid) {
        var used = p.budget ? (p.spent + p.reserved) / p.budget : null;
        return el('div', {}, [
          el('div', { class: 'muted' }, [name + ' · ' + p.period]),
          el('div', { class: 'big', 'data-testid': testid, 'data-value': p.spent }, [usd(p.spent)]),
          el('div', { class: 'muted' }, [p.budget === null ? 'no budget' : 'of ' + usd(p.budget) + ' · ' + usd(p.reserved) + ' held · ' + pct(used)]),
          p.budget === null ? null : meter(used)
        ]);
      }
      var kids = [el('div', { class: 'kpis' }, [kpi('Today', b.daily, 'daily-spent'), kpi('This month', b.monthly, 'monthly-spent')])];
      if (b.history) {
        var today = b.history.days[b.history.days.length - 1];
        kids.push(el('div', { class: 'charts' }, [
          el('div', {}, [el('h2', {}, ['Per day (UTC)']), chart(b.history.days, 'date', b.daily.budget, 'spend per day')]),
          el('div', {}, [el('h2', {}, ['Per hour (UTC)']), chart(b.history.hours, 'hour', null, 'spend per hour')])
        ]));
        var models = Object.keys((today && today.byModel) || {}).sort(function (x, y) { return today.byModel[y] - today.byModel[x]; });
        if (models.length) kids.push(el('h2', {}, ['By model, today']), table(['model', 'spent'], models.map(function (m) { return [m, usd(today.byModel[m])]; }), [0, 1]));
      }
      var tags = [];
      Object.keys(b.monthly.byTag || {}).forEach(function (k) {
        Object.keys(b.monthly.byTag[k]).forEach(function (val) { tags.push([k + '=' + val, usd(((b.daily.byTag || {})[k] || {})[val] || 0), usd(b.monthly.byTag[k][val])]); });
      });
      if (tags.length) kids.push(el('h2', {}, ['By tag']), table(['tag', 'today', 'month'], tags, [0, 1, 1]));
      out.push(section('Spend', kids, true, b.prefix));
    });
    return out;
  }

  function guard(d) {
    if (!d.guard.length) return section('Guard limits', [empty('No guard meters yet.')]);
    var rows = d.guard.map(function (g) {
      var p = g.max ? g.used / g.max : null;
      var money = g.unit === 'usd';
      return [g.limit, g.scope, money ? usd(g.used) : num(g.used), money ? usd(g.max) : num(g.max), el('span', { class: p === null ? null : level(p) }, [pct(p)])];
    });
    var kids = [table(['limit', 'scope', 'used', 'max', 'use'], rows, [0, 0, 1, 1, 1])];
    Object.keys(d.guardHidden).forEach(function (id) { kids.push(empty('… and ' + d.guardHidden[id] + ' more scopes of ' + id)); });
    return section('Guard limits · busiest scopes', kids);
  }

  function quota(d) {
    var rows = [];
    d.quota.forEach(function (q) {
      q.keys.forEach(function (k) {
        rows.push([q.scope, k.key, el('span', { class: k.ok ? 'ok' : 'bad' }, [k.ok ? 'ready' : 'blocked: ' + k.reason]), k.cooldownMs > 0 ? (k.cooldownMs / 1000).toFixed(1) + ' s' : '–', pct(k.tokenPct / 100), num(k.dailyLeft) + ' / ' + num(k.dailyCap)]);
      });
    });
    d.quotaScopes.forEach(function (q) {
      q.keys.forEach(function (k) { rows.push([q.scope, k.key, 'in Redis', '–', num(k.windowTokens) + ' tok', num(k.requestsToday) + ' today']); });
    });
    if (!rows.length) return section('Quota keys', [empty('No quota keys given or found.')]);
    return section('Quota keys · headroom', [table(['scope', 'key', 'state', 'cooldown', 'TPM used', 'requests left today'], rows, [0, 0, 0, 1, 1, 1])]);
  }

  function caches(d) {
    var kids = [];
    if (d.caches.length) kids.push(table(['cache', 'hits', 'misses', 'hit rate'], d.caches.map(function (c) { return [c.name, num(c.hits), num(c.misses), pct(c.hitRate)]; }), [0, 1, 1, 1]));
    kids.push(el('p', {}, ['Guarded calls answered from the cache: ', el('b', {}, [num(d.savings.cachedCalls)]), ' · estimated savings ', el('b', { 'data-testid': 'savings' }, [usd(d.savings.estimatedUsd)])]));
    return section('Caches', kids);
  }

  function store(d) {
    var kids = [];
    var s = d.store;
    if (s && s.error) kids.push(el('p', { class: 'bad' }, ['Redis ' + s.url + ': ' + s.error]));
    else if (s) {
      kids.push(el('p', {}, [el('span', { class: 'ok' }, [s.ping]), ' ' + s.url + ' · ' + s.pingMs + ' ms · Redis ' + (s.version || '?') + ' · ' + num(s.keys) + ' keys · ' + (s.usedMemory || '?') + ' · maxmemory-policy ', el('span', { class: s.maxmemoryPolicy === 'noeviction' ? 'ok' : 'warn' }, [s.maxmemoryPolicy || '?'])]));
      s.warnings.forEach(function (w) { kids.push(el('p', { class: 'warn' }, [w])); });
    } else kids.push(el('p', { class: 'muted' }, ['In-process store (this process only).']));
    d.stores.forEach(function (h) { kids.push(el('p', {}, ['Store ', el('span', { class: h.status === 'up' ? 'ok' : 'bad' }, [h.status]), h.outage ? ' since ' + new Date(h.outage.since).toISOString() + ': ' + h.outage.message : '', ' · ' + h.pending + ' counts waiting'])); });
    if (d.classes.length) {
      kids.push(table(['class', 'prefix', 'decisions', 'policy', 'store', 'queued'], d.classes.map(function (c) {
        return [c.kind, c.prefix || '–', num(c.decisions), c.policy || 'in process', el('span', { class: c.storeStatus === 'down' ? 'bad' : 'ok' }, [c.storeStatus || '–']), num(c.pending)];
      }), [0, 0, 1, 0, 0, 1]));
    }
    d.errors.forEach(function (e) { kids.push(el('p', { class: 'bad' }, [e])); });
    return section('Store & failure policy', kids);
  }

  function refusals(d) {
    if (!d.refusals.length) return section('Recent refusals', [empty('None in this process.')]);
    return section('Recent refusals', [table(['when', 'limit', 'scope', 'retry in', 'model'], d.refusals.map(function (r) {
      return [r.at.slice(11, 19), r.limit + (r.reason ? ' (' + r.reason + ')' : ''), r.scope === null ? '–' : r.scope, r.retryAfterMs === null ? '–' : (r.retryAfterMs / 1000).toFixed(1) + ' s', r.model || '–'];
    }), [0, 0, 0, 1, 0])]);
  }

  function render(d) {
    var kids = budgets(d).concat([guard(d), quota(d), caches(d), store(d), refusals(d)]);
    while (app.firstChild) app.removeChild(app.firstChild);
    kids.forEach(function (k) { app.appendChild(k); });
    Array.prototype.forEach.call(app.querySelectorAll('.meter>i'), function (i) { i.style.width = i.getAttribute('data-w') + '%'; });
    status.textContent = 'updated ' + d.now.slice(11, 19) + ' UTC · every ' + d.refreshMs / 1000 + ' s';
    status.setAttribute('data-ready', '1');
  }

  var every = 5000;
  function poll() {
    fetch(base, { headers: { accept: 'application/json' }, credentials: 'same-origin' }).then(function (r) {
      if (!r.ok) throw new Error('HTTP ' + r.status);
      return r.json();
    }).then(function (d) { every = d.refreshMs; render(d); }, function (e) {
      status.textContent = 'could not refresh: ' + e.message;
    }).then(function () { setTimeout(poll, every); });
  }
  poll();
})();
`

module.exports = { dashboard }
