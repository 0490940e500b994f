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
    // Every node must see the whole slot map, not only the one redis-cli talked to: a node that
    // is still catching up answers CLUSTERDOWN or MOVED loops to the first commands.
    const admins = nodes.map((n) => new Redis(n.url))
    try {
      const deadline = Date.now() + 20_000
      for (;;) {
        const infos = (await Promise.all(admins.map((a) => a.call('CLUSTER', 'INFO')))) as string[]
        if (infos.every((info) => info.includes('cluster_state:ok') && info.includes('cluster_slots_assigned:16384') && info.includes('cluster_known_nodes:3')))
          break
        if (Date.now() > deadline) throw new Error(`cluster did not become ok:\n${infos.join('\n')}`)
        await new Promise((r) => setTimeout(r, 100))
      }
    } finally {
      for (const a of admins) a.disconnect()
    }
  } catch (e) {
    await stop()
    throw e
  }
  return { urls: nodes.map((n) => n.url), ports: nodes.map((n) => n.port), stop }
}
