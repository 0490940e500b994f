// A separate Node process using a SemanticCache on a shared Redis, with the same n-gram test
// embedder as the tests: `set <url> <prefix> <question> <answer>` stores an entry,
// `get <url> <prefix> <question>` prints the lookup's result as JSON. SEM_MAX_ENTRIES sets
// maxEntries.
'use strict'
const { createHash } = require('node:crypto')
const { SemanticCache } = require('../../lib/index.js')

function embed(text, dims = 256) {
  const v = new Float32Array(dims)
  for (const w of text.toLowerCase().replace(/[^\p{L}\p{N}]+/gu, ' ').trim().split(' ')) {
    const padded = ` ${w} `
    for (let i = 0; i + 3 <= padded.length; i++) {
      v[createHash('sha1').update(padded.slice(i, i + 3)).digest().readUInt32LE(0) % dims] += 1
    }
  }
  return v
}

const [kind, url, prefix, question, answer] = process.argv.slice(2)
const messages = [{ role: 'user', content: question }]

async function main() {
  const maxEntries = process.env.SEM_MAX_ENTRIES ? Number(process.env.SEM_MAX_ENTRIES) : undefined
  const cache = new SemanticCache(url, { embed, prefix, maxEntries })
  if (kind === 'set') {
    await cache.set('gpt-4o', messages, answer)
    process.stdout.write(JSON.stringify({ ok: true }))
  } else {
    process.stdout.write(JSON.stringify(await cache.get('gpt-4o', messages)))
  }
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack))
  process.exit(1)
})
