// Starts a real redis-server on a free loopback port for the test run, and stops it after.
// vitest runs this once (globalSetup); tests read the URL with inject('redisUrl').
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import type { TestProject } from 'vitest/node'

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo
      srv.close(() => resolve(port))
    })
  })
}

export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1')
      s.once('connect', () => {
        s.destroy()
        resolve(true)
      })
      s.once('error', () => resolve(false))
    })
    if (ok) return
    if (Date.now() > deadline) throw new Error(`redis-server did not listen on ${port}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

export interface RedisServer {
  port: number
  url: string
  process: ChildProcess
  stop(): Promise<void>
}

/**
 * A throwaway redis-server: no persistence, its own temp dir, loopback only. With `tls`, it
 * listens for TLS only, with a self-signed certificate made by openssl.
 */
export async function startRedis(extraArgs: string[] = [], tls = false, atPort?: number): Promise<RedisServer> {
  const port = atPort ?? (await freePort())
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tollgate-redis-'))
  let listen = ['--port', String(port)]
  if (tls) {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost',
      '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], { stdio: 'ignore' })
    listen = ['--port', '0', '--tls-port', String(port), '--tls-cert-file', path.join(dir, 'cert.pem'),
      '--tls-key-file', path.join(dir, 'key.pem'), '--tls-ca-cert-file', path.join(dir, 'cert.pem'), '--tls-auth-clients', 'no']
  }
  const child = spawn(
    'redis-server',
    [...listen, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...extraArgs],
    { stdio: 'ignore' },
  )
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.once('error', (e) => {
    throw new Error(`cannot start redis-server (is it installed?): ${e.message}`)
  })
  await waitForPort(port)
  return {
    port,
    url: `${tls ? 'rediss' : 'redis'}://127.0.0.1:${port}`,
    process: child,
    async stop() {
      child.kill('SIGKILL')
      await exited
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string
    redisPort: number
    clusterUrls: string[]
  }
}

export default async function setup(project: TestProject) {
  const { startCluster } = await import('./redis-cluster.js')
  const [server, cluster] = await Promise.all([startRedis(), startCluster()])
  project.provide('redisUrl', server.url)
  project.provide('redisPort', server.port)
  project.provide('clusterUrls', cluster.urls)
  return async () => {
    await Promise.all([server.stop(), cluster.stop()])
  }
}
