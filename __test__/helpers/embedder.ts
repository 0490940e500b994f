// A deterministic test embedder: hashed character trigrams of the lower-cased text (words
// padded with spaces), counted into `dims` buckets. Similar texts share most trigrams, so
// similarities are exact and repeatable — no model, no network.
import { createHash } from 'node:crypto'

export function ngramEmbedder(dims = 256) {
  const calls: string[] = []
  const embed = (text: string): Float32Array => {
    calls.push(text)
    const v = new Float32Array(dims)
    const words = text.toLowerCase().replace(/[^\p{L}\p{N}]+/gu, ' ').trim().split(' ')
    for (const w of words) {
      const padded = ` ${w} `
      for (let i = 0; i + 3 <= padded.length; i++) {
        const h = createHash('sha1').update(padded.slice(i, i + 3)).digest()
        v[h.readUInt32LE(0) % dims] += 1
      }
    }
    return v
  }
  return { embed, calls }
}

export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0
  let na = 0
  let nb = 0
  for (let i = 0; i < a.length; i++) {
    d += a[i] * b[i]
    na += a[i] * a[i]
    nb += b[i] * b[i]
  }
  return d / Math.sqrt(na * nb)
}
