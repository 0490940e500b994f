'use strict'
// The benchmarks' redis-server: one of their own on a free loopback port (or `port`), no
// persistence. REDIS_URL, when set, is used instead, except with `own` (the outage bench must
// pause and kill its server). `stop()` kills it and removes its folder.

const { spawn } = require('node:child_process')
const net = require('node:net')
const os = require('node:os')
const fs = require('node:fs')
const path = require('node:path')

async function startRedis({ port, own = false } = {}) {
  if (process.env.REDIS_URL && !own) return { url: process.env.REDIS_URL, stop: async () => {} }
  if (port === undefined) {
    port = await new Promise((resolve) => {
      const srv = net.createServer().listen(0, '127.0.0.1', () => {
        const p = srv.address().port
        srv.close(() => resolve(p))
      })
    })
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tollgate-bench-'))
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' })
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise((r) => net.connect(port, '127.0.0.1').once('connect', function () { this.destroy(); r(true) }).once('error', () => r(false)))
    if (ok) break
    await new Promise((r) => setTimeout(r, 25))
  }
  const exited = new Promise((r) => child.once('exit', r))
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    exited,
    pause: () => child.kill('SIGSTOP'),
    resume: () => child.kill('SIGCONT'),
    stop: async () => {
      child.kill('SIGCONT')
      child.kill('SIGKILL')
      fs.rmSync(dir, { recursive: true, force: true })
    },
  }
}

module.exports = { startRedis }
