// Token counts against OpenAI's own tokenizer (the `tiktoken` npm package, WASM) as the oracle.
import { get_encoding, type Tiktoken } from 'tiktoken'
import { afterAll, describe, expect, it } from 'vitest'
import { codes, countMessageTokens, countTokens, countTokensBatch, encodingForModel } from '../lib/index.js'

const oracle: Record<string, Tiktoken> = { o200k_base: get_encoding('o200k_base'), cl100k_base: get_encoding('cl100k_base') }
afterAll(() => Object.values(oracle).forEach((e) => e.free()))

/** A deterministic generator of numbers in [0, 1) (32-bit LCG; `Math.imul` keeps its low bits). */
function random(seed: number): () => number {
  return () => ((seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff) / 0x80000000)
}

/**
 * Mostly ASCII of every class (where tollgate cuts pieces without the regex), with the
 * non-ASCII characters on the classes' edges: letters, CJK, ſ (which `(?i)s` matches), dashes,
 * no-break / ideographic / line-separator spaces, a superscript digit, a title-case letter, a
 * modifier letter and a combining mark.
 */
function asciiEdges(n: number): string[] {
  const rnd = random(7)
  const common = "aAzZbQsStTrReEvVlLmMdD09 '"
  const all = common + '"\t\n\r\u000b\u000c\u0000\u001f\u007f!?/.,;:-_()[]{}<>@#$%^&*+=~`|\\é你ſ—\u00a0\u3000²ǅʰ\u0301\u2028\u0085'
  return Array.from({ length: n }, () => {
    let s = ''
    const len = Math.floor(rnd() * 40)
    for (let j = 0; j < len; j++) s += rnd() < 0.5 ? common[Math.floor(rnd() * common.length)] : all[Math.floor(rnd() * all.length)]
    return s
  })
}

/** A deterministic mix of scripts, symbols, emoji and whitespace. */
function corpus(): string[] {
  const rnd = random(42)
  const ranges = [
    [0x20, 0x7e], // ASCII
    [0x4e00, 0x4fff], // CJK
    [0x3040, 0x30ff], // kana
    [0x0400, 0x04ff], // Cyrillic
    [0x0600, 0x06ff], // Arabic
    [0x1f300, 0x1f64f], // emoji
    [0xe9, 0xff], // Latin-1 letters
  ]
  const pieces = ['\n', '\t', '    ', '\r\n', '  \n\n  ', '...', '—', '1234', "'s", ' the ']
  const out: string[] = []
  for (let i = 0; i < 300; i++) {
    let s = ''
    const len = 1 + Math.floor(rnd() * 80)
    for (let j = 0; j < len; j++) {
      if (rnd() < 0.2) s += pieces[Math.floor(rnd() * pieces.length)]
      else {
        const [a, b] = ranges[Math.floor(rnd() * ranges.length)]
        s += String.fromCodePoint(a + Math.floor(rnd() * (b - a + 1)))
      }
    }
    out.push(s)
  }
  return out
}

const fixed = [
  '',
  'Hello, world!',
  'fn main() {\n    let x: Vec<u8> = vec![1, 2, 3];\n    println!("{:?}", x);\n}\n',
  'def f(x):\n\treturn x ** 2  # square\n',
  '你好，世界！这是一个测试。日本語のテキストも。한국어도.',
  '😀👍🏽🇯🇵👨‍👩‍👧 emoji ZWJ sequences 🤖',
  '   \n\n\t\t    spaces      and\u00a0nbsp\u2003em',
  'x'.repeat(3_000),
  '_'.repeat(2_000) + 'a'.repeat(1_000),
  '1234567890'.repeat(100),
  'The quick brown fox jumps over the lazy dog. '.repeat(50),
  '<|endoftext|> is ordinary text in a count: special tokens are not honoured',
]

describe.each(['o200k_base', 'cl100k_base'])('countTokens equals OpenAI tiktoken [%s]', (enc) => {
  it('on code, CJK, emoji, whitespace runs and repetition', () => {
    for (const text of fixed) expect(countTokens(text, enc), JSON.stringify(text.slice(0, 40))).toBe(oracle[enc].encode(text, [], []).length)
  })

  it('on 300 random mixed-script strings', () => {
    const texts = corpus()
    const ours = countTokensBatch(texts, enc)
    texts.forEach((t, i) => expect(ours[i], JSON.stringify(t)).toBe(oracle[enc].encode(t, [], []).length))
  })

  it('on 3,000 random strings of ASCII and the characters at its edges, counted twice', () => {
    const texts = asciiEdges(3_000)
    const expected = texts.map((t) => oracle[enc].encode(t, [], []).length)
    // The second pass counts the short pieces from the per-thread cache of piece counts.
    for (let pass = 0; pass < 2; pass++) texts.forEach((t, i) => expect(countTokens(t, enc), JSON.stringify(t)).toBe(expected[i]))
    // And all of them as one text, where the pieces meet across the joins.
    expect(countTokens(texts.join(''), enc)).toBe(oracle[enc].encode(texts.join(''), [], []).length)
  })
})

describe('long inputs', () => {
  it.each(['o200k_base', 'cl100k_base'])('300 KB of lines equals the oracle [%s]', (enc) => {
    const lines = corpus().concat(fixed.slice(1, 7), ['end.', '/usr/local/bin', '', '  indented', '\t'])
    let text = ''
    for (let i = 0; text.length < 300_000; i++) text += lines[(i * 7) % lines.length] + (i % 5 === 0 ? '\r\n' : '\n')
    expect(countTokens(text, enc)).toBe(oracle[enc].encode(text, [], []).length)
  })

  it.each(['o200k_base', 'cl100k_base'])('300 KB of mixed prose without line breaks equals the oracle [%s]', (enc) => {
    const words = corpus().map((w) => w.replace(/[\r\n]/g, ' '))
    const prose = ['The quick brown fox', 'jumps over 42 lazy dogs,', "isn't it?", 'x1 y2 z3', 'Ünïcödé', 'end']
    let text = ''
    for (let i = 0; text.length < 300_000; i++) text += (i % 3 ? prose[i % prose.length] : words[i % words.length]) + ' '
    expect(countTokens(text, enc)).toBe(oracle[enc].encode(text, [], []).length)
  })

  it('100,000 repeated characters: the count OpenAI gives (12,500 with o200k_base)', () => {
    // The WASM oracle takes ~12 s on this input (quadratic merging); its answer was 12,500.
    expect(countTokens('a'.repeat(100_000), 'o200k_base')).toBe(12_500)
    expect(countTokens('a'.repeat(100_000), 'gpt-4o')).toBe(countTokensBatch(['a'.repeat(100_000)], 'o200k_base')[0])
  })

  it('1 MB without spaces is counted (the oracle cannot: it crashes)', () => {
    const mb = Array.from({ length: 1 << 20 }, (_, i) => String.fromCharCode(97 + ((i * 7919) % 26))).join('')
    const n = countTokens(mb, 'o200k_base')
    expect(n).toBeGreaterThan(mb.length / 8)
    expect(n).toBeLessThanOrEqual(mb.length)
    // Counting is additive over pieces the pre-tokenizer would never join: letters then digits.
    expect(countTokens(mb + '0123', 'o200k_base')).toBe(n + countTokens('0123', 'o200k_base'))
  })
})

describe('models and chat messages', () => {
  it('maps model names to their encoding', () => {
    expect(encodingForModel('gpt-4o')).toBe('o200k_base')
    expect(encodingForModel('gpt-4o-mini-2024-07-18')).toBe('o200k_base')
    expect(encodingForModel('o3-mini')).toBe('o200k_base')
    expect(encodingForModel('gpt-4')).toBe('cl100k_base')
    expect(encodingForModel('gpt-3.5-turbo')).toBe('cl100k_base')
    expect(encodingForModel('claude-3-5-sonnet-latest')).toBeNull()
    expect(countTokens('Hello, world!', 'gpt-4o')).toBe(oracle.o200k_base.encode('Hello, world!').length)
    expect(countTokens('Hello, world!', 'gpt-4')).toBe(oracle.cl100k_base.encode('Hello, world!').length)
    expect(countTokens('Hello, world!')).toBe(oracle.o200k_base.encode('Hello, world!').length)
  })

  it('an unknown model is a RangeError unless a fallback is given', () => {
    expect(() => countTokens('hi', 'claude-3-5-sonnet-latest')).toThrow(expect.objectContaining({ name: 'RangeError', code: codes.UNKNOWN_MODEL }))
    expect(countTokens('hi', 'claude-3-5-sonnet-latest', { fallback: 'cl100k_base' })).toBe(oracle.cl100k_base.encode('hi').length)
  })

  it("counts chat messages with OpenAI's formatting overhead", () => {
    const e = oracle.o200k_base
    const n = (s: string) => e.encode(s).length
    const messages = [
      { role: 'system', content: 'You are a helpful assistant.' },
      { role: 'user', content: 'What is 2+2?', name: 'ann' },
      { role: 'assistant', content: null },
      { role: 'user', content: [{ type: 'text', text: 'Describe this:' }, { type: 'image_url', image_url: { url: 'x' } }, { type: 'text', text: 'please' }] },
    ]
    const expected =
      3 + n('system') + n('You are a helpful assistant.') +
      3 + n('user') + n('What is 2+2?') + 1 + n('ann') +
      3 + n('assistant') +
      3 + n('user') + n('Describe this:') + n('please') +
      3
    expect(countMessageTokens(messages as any, 'gpt-4o')).toBe(expected)
  })

  it('plain prompts (role and string content only, the fast path) count as the oracle says, under both encodings', () => {
    const next = random(7)
    const words = ['hello', ' world', 'ümlaut', '😀', '\n', ' 1234', 'assistant', ' the', '日本語']
    for (let k = 0; k < 50; k++) {
      const messages = Array.from({ length: 1 + Math.floor(next() * 9) }, () => ({
        role: ['system', 'user', 'assistant', 'tool', ''][Math.floor(next() * 5)],
        content: Array.from({ length: Math.floor(next() * 12) }, () => words[Math.floor(next() * words.length)]).join(''),
      }))
      for (const [model, enc] of [['gpt-4o', 'o200k_base'], ['gpt-4', 'cl100k_base']] as const) {
        const n = (s: string) => oracle[enc].encode(s).length
        const expected = messages.reduce((t, m) => t + 3 + n(m.role) + n(m.content), 3)
        expect(countMessageTokens(messages, model)).toBe(expected)
      }
    }
  })

  it('a message object sent again is counted from what it holds now: changed content, the other encoding', () => {
    const m = { role: 'user', content: 'Say hello in one word.' }
    const count = (enc: 'o200k_base' | 'cl100k_base', s: string) => 3 + oracle[enc].encode('user').length + oracle[enc].encode(s).length + 3
    for (let round = 0; round < 2; round++) {
      expect(countMessageTokens([m], 'gpt-4o')).toBe(count('o200k_base', m.content))
      expect(countMessageTokens([m], 'gpt-4')).toBe(count('cl100k_base', m.content))
    }
    // The same object, its content replaced (in place, as an app editing its history might).
    m.content = '日本語のテキスト 😀 and a much longer sentence than before, counted again'
    expect(countMessageTokens([m], 'gpt-4o')).toBe(count('o200k_base', m.content))
    expect(countMessageTokens([m], 'gpt-4')).toBe(count('cl100k_base', m.content))
    // An equal string made anew counts the same.
    m.content = ['Say hello', ' in one word.'].join('')
    expect(countMessageTokens([m], 'gpt-4o')).toBe(count('o200k_base', 'Say hello in one word.'))
  })

  it('rejects what is not text', () => {
    expect(() => countTokens(5 as any)).toThrow(expect.objectContaining({ name: 'TypeError', code: codes.INVALID_ARG }))
    expect(() => countTokensBatch(['a', 1] as any)).toThrow(expect.objectContaining({ code: codes.INVALID_ARG }))
    expect(() => countMessageTokens('hi' as any)).toThrow(expect.objectContaining({ code: codes.INVALID_ARG }))
    expect(() => countMessageTokens([null] as any)).toThrow(expect.objectContaining({ code: codes.INVALID_ARG }))
    expect(() => countTokens('a', 'o200k_base', { fallback: 'nope' as any })).not.toThrow() // a known encoding needs no fallback
    expect(() => countTokens('a', 'mystery', { fallback: 'nope' as any })).toThrow(expect.objectContaining({ code: codes.INVALID_ARG }))
  })
})
