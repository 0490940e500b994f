// Strict TypeScript compiles every ```js block of README.md, as an ES module (`import … from
// 'tollgate'`, top-level await) and as CommonJS (`require('tollgate')` checked with checkJs),
// against the hand-written typings: 'tollgate' is lib/index.d.ts and 'tollgate/openai',
// 'tollgate/anthropic', 'tollgate/ai-sdk', 'tollgate/http' their lib/integrations/*.d.ts. The
// free names readme.test.ts gives the blocks (`openai`, `messages`, `redis`, …) are declared with
// the types a user's would have; a tollgate class a block uses without requiring it (the README's
// require at the top of its classes holds for the blocks after it) is imported for it.
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'
import { afterAll, describe, expect, it } from 'vitest'
import * as tollgate from '../lib/index.js'

const run = promisify(execFile)
const root = path.join(__dirname, '..')
// Under __test__ so that `openai`, `ai`, `express`… resolve from the repository's node_modules.
const dir = path.join(__dirname, `.readme-types-${process.pid}`)
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

/** Every ```js block of `text` (```js fragment blocks too: they must compile as well), with its first line. */
function blocks(text: string): Array<{ line: number; code: string }> {
  const out: Array<{ line: number; code: string }> = []
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const fence = lines[i].trim()
    if (!fence.startsWith('```')) continue
    const start = i + 1
    while (i + 1 < lines.length && lines[++i].trim() !== '```');
    if (fence === '```js' || fence === '```js fragment') out.push({ line: start + 1, code: lines.slice(start, i).join('\n') })
  }
  return out
}

// The names readme.test.ts's given() hands the blocks, typed as a user's own would be. Each
// block file declares those it uses and does not declare itself (they are module-scoped there,
// so \`prompt\` does not meet the DOM's global of that name).
const GIVEN: Record<string, string> = {
  openai: "import('openai').default",
  anthropic: "import('@anthropic-ai/sdk').default",
  messages: "Array<{ role: 'user'; content: string }>",
  callModel: "(messages?: Array<{ role: 'user'; content: string }>) => Promise<import('openai').default.ChatCompletion>",
  callProvider: "(key?: import('tollgate').QuotaKey) => Promise<import('openai').default.ChatCompletion>",
  redis: "import('tollgate').StoreLike",
  userId: 'string',
  prompt: 'string',
  text: 'string',
  texts: 'string[]',
  signal: 'AbortSignal',
  pager: '{ send(message: string): void }',
  org: 'string',
  tracker: "import('tollgate').CostTracker",
  clock: 'number',
  url: 'string',
  host: 'string',
  port: 'number',
  username: 'string',
  password: 'string',
  db: 'number',
  now: '() => number',
  http: "typeof import('node:http')",
  // what wrapLanguageModel takes: a provider's model object (the README test's is the AI SDK's mock)
  languageModel: "Parameters<typeof import('ai').wrapLanguageModel>[0]['model']",
}
const GIVEN_DTS = `// Free names of the README's blocks (see readme.test.ts, given()).\nexport interface Given {\n${Object.entries(GIVEN)
  .map(([n, t]) => `  ${n}: ${t}\n`)
  .join('')}}\n`

const TOLLGATE = Object.keys(tollgate).filter((n) => /^[A-Za-z_$][\w$]*$/.test(n) && n !== 'default')

/** Names a block declares or imports itself. */
const declares = (code: string, name: string) =>
  new RegExp(`\\b(const|let|var|class|function)\\s+(\\{[^}]*\\b${name}\\b[^}]*\\}|${name}\\b)`).test(code) || new RegExp(`^import\\s*\\{[^}]*\\b${name}\\b[^}]*\\}`, 'm').test(code)

/** Whether `code` uses `name` (not as a property). */
const uses = (code: string, name: string) => new RegExp(`(^|[^.\\w$])${name}\\b`, 'm').test(code)

/** The tollgate exports a block uses without requiring them. */
const implicit = (code: string) => TOLLGATE.filter((n) => uses(code, n) && !declares(code, n))

/** The given names a block uses without declaring them. */
const free = (code: string) => Object.keys(GIVEN).filter((n) => uses(code, n) && !declares(code, n))

const asImports = (code: string) =>
  code
    .replace(/^const \{([^}]+)\} = require\('([^']+)'\)$/gm, (_, names: string, from: string) => `import {${names.replace(/(\w+)\s*:\s*(\w+)/g, '$1 as $2')}} from '${from}'`)
    .replace(/^const (\w+) = require\('([^']+)'\)$/gm, "import $1 from '$2'")

const asRequires = (code: string) =>
  code
    .replace(/^import (\w+) from '([^']+)'$/gm, "const $1 = require('$2')")
    .replace(/^import \{([^}]+)\} from '([^']+)'$/gm, (_, names: string, from: string) => `const {${names.replace(/(\w+)\s+as\s+(\w+)/g, '$1: $2')}} = require('${from}')`)

/**
 * Compiles `all` (the blocks of `source`) under strict TypeScript, each as an ES module and as
 * CommonJS, in `sub` of the work folder: tsc's report ('' when every block compiles).
 */
async function compile(source: string, all: Array<{ line: number; code: string }>, sub: string): Promise<string> {
  const at = path.join(dir, sub)
  fs.mkdirSync(at, { recursive: true })
  fs.writeFileSync(path.join(at, 'given.d.ts'), GIVEN_DTS)
  const files = ['given.d.ts']
  for (const [i, b] of all.entries()) {
    const names = implicit(b.code)
    const given = free(b.code)
    const esm =
      `// ${source} line ${b.line}\n${names.length ? `import { ${names.join(', ')} } from 'tollgate'\n` : ''}` +
      given.map((n) => `declare const ${n}: import('./given.js').Given['${n}']\n`).join('') +
      `${asImports(b.code)}\nexport {}\n`
    const cjs =
      `// @ts-check\n// ${source} line ${b.line}\n${names.length ? `const { ${names.join(', ')} } = require('tollgate')\n` : ''}` +
      (given.length ? `const { ${given.join(', ')} } = /** @type {import('./given.js').Given} */ ({})\n` : '') +
      `;(async () => {\n${asRequires(b.code)}\n})()\n`
    fs.writeFileSync(path.join(at, `block-${i + 1}.mts`), esm)
    fs.writeFileSync(path.join(at, `block-${i + 1}.cjs`), cjs)
    files.push(`block-${i + 1}.mts`, `block-${i + 1}.cjs`)
  }
  const lib = (p: string) => [path.relative(at, path.join(root, 'lib', p))]
  const tsconfig = {
    compilerOptions: {
      target: 'ES2022',
      lib: ['ES2023', 'DOM'],
      module: 'NodeNext',
      moduleResolution: 'NodeNext',
      strict: true,
      noEmit: true,
      skipLibCheck: false,
      types: ['node'],
      allowJs: true,
      checkJs: true,
      esModuleInterop: true,
      paths: {
        tollgate: lib('index.d.ts'),
        'tollgate/openai': lib('integrations/openai.d.ts'),
        'tollgate/anthropic': lib('integrations/anthropic.d.ts'),
        'tollgate/ai-sdk': lib('integrations/ai-sdk.d.ts'),
        'tollgate/http': lib('integrations/http.d.ts'),
        'tollgate/dashboard': lib('dashboard.d.ts'),
      },
    },
    files,
  }
  fs.writeFileSync(path.join(at, 'tsconfig.json'), JSON.stringify(tsconfig, null, 2))
  const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc')
  return run(process.execPath, [tsc, '-p', at], { cwd: at, timeout: 120_000 }).then(
    () => '',
    (e: { stdout?: string; stderr?: string }) => `${e.stdout ?? ''}${e.stderr ?? ''}` || String(e),
  )
}

describe('README.md: every js block compiles under strict TypeScript', () => {
  const all = blocks(fs.readFileSync(path.join(root, 'README.md'), 'utf8'))

  it('converts between require and import, and finds the tollgate names a block leaves implicit', () => {
    expect(asImports("const { A, B: C } = require('tollgate')\nconst X = require('openai')")).toBe("import { A, B as C } from 'tollgate'\nimport X from 'openai'")
    expect(asRequires("import { A, B as C } from 'tollgate'\nimport X from 'openai'")).toBe("const { A, B: C } = require('tollgate')\nconst X = require('openai')")
    expect(implicit("const { Guard } = require('tollgate')\nnew Guard(); new RateLimiter(); x.Quota; countTokens('a')")).toEqual(expect.arrayContaining(['RateLimiter', 'countTokens']))
    expect(implicit("import { Guard } from 'tollgate'\nnew Guard(); x.Quota")).toEqual([])
  })

  it(`compiles each of them (${all.length}) as ESM and as CommonJS`, async () => {
    expect(all.length).toBeGreaterThanOrEqual(18)
    expect(await compile('README.md', all, 'readme')).toBe('')
  }, 120_000)
})

describe('docs/*.md: every js block compiles under strict TypeScript', () => {
  const docs = fs.readdirSync(path.join(root, 'docs')).filter((f) => f.endsWith('.md')).sort()
  const all = docs.flatMap((f) => blocks(fs.readFileSync(path.join(root, 'docs', f), 'utf8')).map((b) => ({ ...b, doc: f })))

  it(`compiles each of them (${all.length}) as ESM and as CommonJS`, async () => {
    expect(all.length).toBeGreaterThanOrEqual(40)
    const out = await compile('docs', all, 'docs')
    // tsc names the block file; the report says which doc and line it came from.
    const where = (i: number) => `docs/${all[i - 1].doc} line ${all[i - 1].line}`
    expect(out.replace(/block-(\d+)\.(mts|cjs)/g, (_, i: string, ext: string) => `${where(Number(i))} (${ext === 'mts' ? 'ESM' : 'CJS'})`)).toBe('')
  }, 120_000)
})
