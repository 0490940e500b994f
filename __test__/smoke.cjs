'use strict'
// The release workflow's check of each platform's build (no Redis there): the addon loads, a
// limiter decides on the embedded store, and token counts equal OpenAI's tiktoken.
const assert = require('node:assert/strict')
const { get_encoding } = require('tiktoken')
const tollgate = require('../lib/index.js')

async function main() {
  const limiter = new tollgate.RateLimiter(new tollgate.MemoryStore(), { maxRequests: 1, windowSeconds: 60 })
  assert.equal((await limiter.consume('user')).allowed, true)
  assert.equal((await limiter.consume('user')).allowed, false)
  const texts = ['Hello, world!', 'naïve café 你好，世界 🙂', '  \n\tfn main() { println!("{}", 42); }\r\n', 'x'.repeat(10_000)]
  for (const name of ['o200k_base', 'cl100k_base']) {
    const reference = get_encoding(name)
    for (const text of texts) assert.equal(tollgate.countTokens(text, name), reference.encode(text).length, `${name}: ${text}`)
    reference.free()
  }
  console.log(`tollgate smoke test passed on ${process.platform}-${process.arch}`)
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
