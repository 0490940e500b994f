// A TCP proxy in front of a redis-server that can cut every connection at once — what a load
// balancer restart or a network blip does to a client.
import net from 'node:net'

export interface Proxy {
  url: string
  /** Destroys every open connection (new ones are accepted again right away). */
  cut(): void
  /** Refuses new connections and cuts the open ones, until `open()`. */
  refuse(): void
  open(): void
  close(): Promise<void>
}

export async function startProxy(targetPort: number): Promise<Proxy> {
  const sockets = new Set<net.Socket>()
  let refusing = false
  const server = net.createServer((client) => {
    if (refusing) {
      client.destroy()
      return
    }
    const upstream = net.connect(targetPort, '127.0.0.1')
    for (const s of [client, upstream]) {
      sockets.add(s)
      s.on('close', () => sockets.delete(s))
      s.on('error', () => {})
    }
    client.pipe(upstream)
    upstream.pipe(client)
    client.on('close', () => upstream.destroy())
    upstream.on('close', () => client.destroy())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as net.AddressInfo
  const cut = () => {
    for (const s of sockets) s.destroy()
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    cut,
    refuse() {
      refusing = true
      cut()
    },
    open() {
      refusing = false
    },
    close: () =>
      new Promise<void>((resolve) => {
        cut()
        server.close(() => resolve())
      }),
  }
}
