// Every `js` code block of README.md runs here, extracted from the file so the README cannot
// drift from the code. The blocks talk to real `openai` and `@anthropic-ai/sdk` clients pointed
// at a local fake provider, so they read the fields real responses carry. Free names a block
// uses without declaring (`openai`, `messages`, `redis`, …) are given below; `require('tollgate')`
// is this checkout; `import` lines become `require`; Redis URLs point at the test's server.
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'
import Redis from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import * as tollgate from '../lib/index.js'
import { startFakeProvider, type FakeProvider } from './helpers/fake-provider.js'
import { redisUrl } from './helpers/stores.js'

const nodeRequire = createRequire(__filename)
const readme = fs.readFileSync(path.join(__dirname, '..', 'README.md'), 'utf8')

/** `[heading, line, code]` of every ```js block. */
function blocks(): Array<[string, number, string]> {
  const out: Array<[string, number, string]> = []
  const lines = readme.split('\n')
  let heading = ''
  for (let i = 0; i < lines.length; i++) {
    if (/^#{2,4} /.test(lines[i])) heading = lines[i].replace(/^#+ /, '')
    if (lines[i].trim() === '```js') {
      const start = i + 1
      while (lines[++i].trim() !== '```');
      out.push([heading, start, lines.slice(start, i).join('\n')])
    }
  }
  return out
}

/** ESM imports as requires (the blocks run as a function body). */
const toCommonJs = (code: string) =>
  code
    .replace(/^import (\w+) from '([^']+)'$/gm, "const $1 = require('$2')")
    .replace(/^import \{([^}]+)\} from '([^']+)'$/gm, "const {$1} = require('$2')")

let fake: FakeProvider
const cleanups: Array<() => unknown> = []
beforeAll(async () => {
  fake = await startFakeProvider()
})
afterAll(async () => {
  for (const c of cleanups.splice(0)) await c()
  await fake.close()
})

/** What `require` gives a block: tollgate whose RedisStores and limiters are closed after the test. */
function requireFor(name: string): unknown {
  if (name === 'tollgate') {
    class RedisStore extends tollgate.RedisStore {
      constructor(...args: any[]) {
        super(...(args as [any]))
        cleanups.push(() => this.close())
      }
    }
    return {
      ...tollgate,
      RedisStore,
      createLLMRateLimiter: (config: any) => {
        const l = tollgate.createLLMRateLimiter(config)
        cleanups.push(() => l.stop())
        return l
      },
    }
  }
  if (name === 'ioredis') {
    return class extends Redis {
      constructor(...args: any[]) {
        super(...(args as [any]))
        cleanups.push(() => this.disconnect())
      }
    }
  }
  if (name === 'http') return { createServer: () => ({ listen: () => undefined }) }
  return nodeRequire(name)
}

/** Free names a block may use. */
function given(): Record<string, unknown> {
  const store = new tollgate.MemoryStore()
  const messages = [{ role: 'user', content: 'Hello, how do I enable 2FA?' }]
  return {
    // The Quick start's `require('tollgate')` holds for the sections after it.
    ...(requireFor('tollgate') as object),
    require: requireFor,
    // A process whose signal handlers are recorded (a block may install one) but never run.
    process: { env: { REDIS_URL: redisUrl() }, on: (_signal: string, _handler: unknown) => undefined, exit: () => undefined },
    openai: fake.openai,
    anthropic: fake.anthropic,
    messages,
    callModel: () => fake.openai.chat.completions.create({ model: 'gpt-4o', messages: messages as any }),
    callProvider: () => fake.openai.chat.completions.create({ model: 'gpt-4o', messages: messages as any }),
    redis: store,
    userId: 'user-1',
    prompt: 'Summarize the following report in three bullet points.',
    text: 'Hello, world!',
    texts: ['Hello', 'world'],
    signal: new AbortController().signal,
    pager: { send: () => undefined },
    org: 'acme',
    tracker: new tollgate.CostTracker(store, { onAlert: () => {} }),
    clock: Date.now(),
    url: redisUrl(),
    host: '127.0.0.1',
    port: 6379,
    username: 'default',
    password: 'secret',
    db: 0,
    now: Date.now,
    http: requireFor('http'),
  }
}

const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor

describe('README code blocks run against real SDK responses', () => {
  const all = blocks()
  it('finds the blocks', () => expect(all.length).toBeGreaterThanOrEqual(17))

  for (const [heading, line, source] of all) {
    it(`${heading} (README.md:${line})`, async () => {
      const code = toCommonJs(source).replaceAll("'redis://localhost:6379'", JSON.stringify(redisUrl()))
      const env = given()
      // A name the block declares itself is not given (it would be declared twice).
      const names = Object.keys(env).filter((n) => n !== 'default' && !new RegExp(`\\b(const|let|var|class)\\s+(\\{[^}]*\\b${n}\\b[^}]*\\}|${n}\\b)`).test(code))
      const run = new AsyncFunction(...names, code)
      await run(...names.map((n) => env[n]))
    })
  }
})
