// Every `js` code block of README.md and of docs/*.md runs here, extracted from the files so the
// docs cannot drift from the code. The blocks talk to real `openai` and `@anthropic-ai/sdk`
// clients pointed at a local fake provider, so they read the fields real responses carry. Free
// names a block uses without declaring (`openai`, `messages`, `redis`, …) are given below;
// `require('tollgate')` is this checkout; `import` lines become `require`; Redis URLs point at
// the test's server.
//
// A block that cannot run on its own (a fragment) is marked ```js fragment: it is compiled, so
// its syntax is checked, but not run. Keep them few; prefer a block that runs.
//
// The same files are also checked for links that lead nowhere (a file or a heading that is not
// there), for citations of places outside the repository, and the README's test commands
// against what CI (.ci/run) runs.
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'
import Redis from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import * as tollgate from '../lib/index.js'
import { startFakeProvider, type FakeProvider } from './helpers/fake-provider.js'
import { redisUrl } from './helpers/stores.js'

const nodeRequire = createRequire(__filename)
const root = path.join(__dirname, '..')
/** README.md, then every docs/*.md, by path from the repository root. */
const files: string[] = [
  'README.md',
  ...fs
    .readdirSync(path.join(root, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => `docs/${f}`),
]
/** Pages of prose, with no example to run; every other page has at least one. */
const PROSE = new Set(['docs/design.md', 'docs/migrating.md', 'docs/performance.md'])
const read = (file: string) => fs.readFileSync(path.join(root, file), 'utf8')

interface Block {
  heading: string
  line: number
  code: string
  fragment: boolean
}

/** Every ```js block of `text`: its heading, first line (1-based) and code; ```js fragment blocks are flagged. */
function blocks(text: string): Block[] {
  const out: Block[] = []
  const lines = text.split('\n')
  let heading = ''
  for (let i = 0; i < lines.length; i++) {
    if (/^#{1,4} /.test(lines[i])) heading = lines[i].replace(/^#+ /, '')
    const fence = lines[i].trim()
    if (fence === '```js' || fence === '```js fragment') {
      const start = i + 1
      while (i + 1 < lines.length && lines[++i].trim() !== '```');
      out.push({ heading, line: start + 1, code: lines.slice(start, i).join('\n'), fragment: fence !== '```js' })
    } else if (fence.startsWith('```')) {
      // Another language's block: skip it whole (its lines are not headings).
      while (i + 1 < lines.length && lines[++i].trim() !== '```');
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
    // `require('ioredis')` is the class; its named export `Redis` is the same class.
    class Closed extends Redis {
      constructor(...args: any[]) {
        super(...(args as [any]))
        cleanups.push(() => this.disconnect())
      }
    }
    return Object.defineProperty(Closed, 'Redis', { value: Closed })
  }
  if (name === 'http') return { createServer: () => ({ listen: () => undefined }) }
  return nodeRequire(name)
}

/** The AI SDK's MockLanguageModelV4 answering generate and stream calls (no network). */
function aiSdkModel(): unknown {
  const { MockLanguageModelV4 } = nodeRequire('ai/test')
  const usage = { inputTokens: { total: 20, noCache: 20, cacheRead: 0, cacheWrite: 0 }, outputTokens: { total: 8, text: 8, reasoning: 0 } }
  const finishReason = { unified: 'stop', raw: 'stop' }
  return new MockLanguageModelV4({
    modelId: 'gpt-4o-mini',
    doGenerate: async () => ({ content: [{ type: 'text', text: 'Enable it under Settings → Security.' }], finishReason, usage, warnings: [] }),
    doStream: async () => ({
      stream: new ReadableStream({
        start(c) {
          for (const part of [{ type: 'text-start', id: 't' }, { type: 'text-delta', id: 't', delta: 'Settings → Security.' }, { type: 'text-end', id: 't' }, { type: 'finish', usage, finishReason }]) c.enqueue(part)
          c.close()
        },
      }),
    }),
  })
}

/** Free names a block may use. */
function given(): Record<string, unknown> {
  const store = new tollgate.MemoryStore()
  const messages = [{ role: 'user', content: 'Hello, how do I enable 2FA?' }]
  return {
    // The README's `require('tollgate')` at the top of its classes holds for every block after it.
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
    // The AI SDK's mock language model, for the tollgate/ai-sdk blocks: a short answer with its usage.
    languageModel: aiSdkModel(),
  }
}

const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor

/** Compiles a block as an async function body over `names`; throws a SyntaxError for bad code. */
function compile(source: string, names: string[]): (...args: unknown[]) => Promise<unknown> {
  return new AsyncFunction(...names, source)
}

/** The names of `env` a block may use: those it does not declare itself (that would declare them twice). */
function freeNames(code: string, env: Record<string, unknown>): string[] {
  return Object.keys(env).filter((n) => n !== 'default' && !new RegExp(`\\b(const|let|var|class)\\s+(\\{[^}]*\\b${n}\\b[^}]*\\}|${n}\\b)`).test(code))
}

describe('the extraction of code blocks', () => {
  const sample = ['# T', '```js', 'const a = 1', '```', '## U', '```sh', '# not a heading', '```', '```js fragment', 'a +', '```'].join('\n')
  it('finds runnable blocks and fragments, with their heading and line, and skips other languages', () => {
    expect(blocks(sample)).toEqual([
      { heading: 'T', line: 3, code: 'const a = 1', fragment: false },
      { heading: 'U', line: 10, code: 'a +', fragment: true },
    ])
  })
  it('a fragment with a syntax error fails to compile', () => {
    expect(() => compile(blocks(sample)[1].code, [])).toThrow(SyntaxError)
  })
})

for (const file of files) {
  describe(`${file}: code blocks run against real SDK responses`, () => {
    const all = blocks(read(file))
    // The README has one example per class; every reference page at least one.
    const least = file === 'README.md' ? 12 : PROSE.has(file) ? 0 : 1
    it(`finds the blocks (at least ${least})`, () => expect(all.filter((b) => !b.fragment).length).toBeGreaterThanOrEqual(least))
    it('keeps fragments few', () => expect(all.filter((b) => b.fragment).length).toBeLessThanOrEqual(2))

    for (const { heading, line, code: source, fragment } of all) {
      it(`${heading} (${file}:${line})${fragment ? ' — fragment, compiled only' : ''}`, async () => {
        const code = toCommonJs(source).replaceAll("'redis://localhost:6379'", JSON.stringify(redisUrl()))
        const env = given()
        const names = freeNames(code, env)
        const run = compile(code, names)
        if (!fragment) await run(...names.map((n) => env[n]))
      })
    }
  })
}

/** GitHub's anchor of a heading: lower case, punctuation dropped, each space a hyphen. */
const slug = (heading: string) =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-')

/** The anchors of a Markdown file (duplicates numbered as GitHub numbers them). */
function anchors(text: string): Set<string> {
  const seen = new Map<string, number>()
  const out = new Set<string>()
  for (const line of withoutFences(text).split('\n')) {
    const m = /^#{1,6} (.*)$/.exec(line)
    if (!m) continue
    const base = slug(m[1])
    const n = seen.get(base) ?? 0
    seen.set(base, n + 1)
    out.add(n === 0 ? base : `${base}-${n}`)
  }
  return out
}

/** The text without fenced code blocks (a `#` line there is not a heading). */
const withoutFences = (text: string) => text.replace(/^```[^\n]*\n[\s\S]*?^```$/gm, '')

/** The text without fenced code blocks and inline code (links there are not links). */
const withoutCode = (text: string) => withoutFences(text).replace(/`[^`\n]*`/g, '``')

describe('links between the README and docs/', () => {
  for (const file of files) {
    it(`every relative link of ${file} leads to a file and heading that exist`, () => {
      const text = withoutCode(read(file))
      const broken: string[] = []
      for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/i.test(target)) continue // http:, https:, mailto:
        const [file2, anchor] = target.split('#')
        const dest = file2 === '' ? file : path.posix.normalize(path.posix.join(path.posix.dirname(file), file2))
        if (!fs.existsSync(path.join(root, dest))) {
          broken.push(`${target}: no ${dest}`)
          continue
        }
        if (anchor !== undefined && !anchors(read(dest)).has(anchor)) broken.push(`${target}: no heading #${anchor} in ${dest}`)
      }
      expect(broken).toEqual([])
    })
  }

  it('every docs/ page is linked from the README or from another page', () => {
    const linked = new Set<string>()
    for (const file of files) {
      for (const [, target] of withoutCode(read(file)).matchAll(/\]\(([^)#\s]+)/g)) {
        linked.add(path.posix.normalize(path.posix.join(path.posix.dirname(file), target)))
      }
    }
    expect(files.filter((f) => f !== 'README.md' && !linked.has(f))).toEqual([])
  })
})

/** Every file of the repository (without node_modules, target and .git), by path from the root. */
function repositoryFiles(dir = ''): string[] {
  const out: string[] = []
  for (const entry of fs.readdirSync(path.join(root, dir), { withFileTypes: true })) {
    if (['node_modules', 'target', '.git'].includes(entry.name)) continue
    const rel = dir === '' ? entry.name : `${dir}/${entry.name}`
    if (entry.isDirectory()) out.push(`${rel}/`, ...repositoryFiles(rel))
    else out.push(rel)
  }
  return out
}

describe('the docs stand on their own', () => {
  it('cite no place outside the repository', () => {
    const found: string[] = []
    for (const file of files) {
      read(file)
        .split('\n')
        .forEach((line, i) => {
          if (/\/work\/|shared\/reference|§|\bseed \d/.test(line)) found.push(`${file}:${i + 1}: ${line.trim()}`)
        })
    }
    expect(found).toEqual([])
  })

  // A file or folder the docs name in code spans (`src/store/key.rs`, `fuzz.test.ts`, `lib/`)
  // must exist, so a rename that leaves a page behind fails here. A bare name may sit anywhere.
  it('name only files and folders that exist', () => {
    const all = repositoryFiles()
    const names = new Set(all.map((f) => f.replace(/\/$/, '').split('/').pop()))
    const paths = new Set(all)
    const missing: string[] = []
    for (const file of files) {
      for (const [, ref] of withoutFences(read(file)).matchAll(/`([\w.-]+(?:\/[\w.-]+)*\/?)`/g)) {
        const isPath = ref.includes('/') && /^(src|lib|docs|__test__|tests|benchmark|examples|scripts|\.ci|\.github)\//.test(ref)
        const isFile = /\.(rs|lua|js|cjs|mjs|ts|yml|toml)$/.test(ref)
        if (!isPath && !isFile) continue
        const found = ref.includes('/') ? paths.has(ref) : names.has(ref)
        if (!found) missing.push(`${file}: ${ref}`)
      }
    }
    expect(missing).toEqual([])
  })

  it("the README's test commands are the ones CI runs", () => {
    const readme = read('README.md')
    const testing = readme.slice(readme.indexOf('\n## Testing\n'))
    const sh = /```sh\n([\s\S]*?)```/.exec(testing)
    expect(sh, 'a ```sh block under ## Testing').not.toBeNull()
    // The README's commands, as CI runs them (`npm ci` is the clean-clone `npm install`).
    const commands = sh![1]
      .split('\n')
      .map((l) => l.replace(/#.*/, '').trim())
      .filter((l) => l.startsWith('npm '))
    expect(commands).toEqual(['npm install', 'npm run demo', 'npm test'])
    const ci = read('.ci/run')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l.startsWith('npm '))
      .map((l) => l.replace(/^npm ci\b.*/, 'npm install'))
    expect(ci).toEqual(commands)
  })
})
