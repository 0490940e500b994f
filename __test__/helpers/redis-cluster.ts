// A throwaway 3-master Redis Cluster on loopback, for the Cluster suite.
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import Redis from 'ioredis'
import { startRedis, type RedisServer } from './redis-server.js'

const run = promisify(execFile)

export interface RedisCluster {
  urls: string[]
  ports: number[]
  stop(): Promise<void>
}

export async function startCluster(): Promise<RedisCluster> {
  const nodes: RedisServer[] = []
  for (let i = 0; i < 3; i++) {
    nodes.push(await startRedis(['--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${i}.conf`, '--cluster-node-timeout', '2000']))
  }
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.stop()))
  }
  try {
    await run('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'], {
      timeout: 20_000,
    })
    const admin = new Redis(nodes[0].url)
    try {
      const deadline = Date.now() + 20_000
      for (;;) {
        const info = (await admin.call('CLUSTER', 'INFO')) as string
        if (info.includes('cluster_state:ok')) break
        if (Date.now() > deadline) throw new Error(`cluster did not become ok:\n${info}`)
        await new Promise((r) => setTimeout(r, 100))
      }
    } finally {
      admin.disconnect()
    }
  } catch (e) {
    await stop()
    throw e
  }
  return { urls: nodes.map((n) => n.url), ports: nodes.map((n) => n.port), stop }
}
