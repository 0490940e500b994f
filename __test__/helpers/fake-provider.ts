// A local fake of the OpenAI and Anthropic HTTP APIs, so the tests get response objects from
// the real `openai` and `@anthropic-ai/sdk` clients — non-streaming and streaming — in exactly
// the shapes those SDKs parse. Usage numbers are fixed (below) so every amount can be checked
// by hand. `rateLimit(n)` answers the next requests 429 (with the headers given, else
// `retry-after-ms: 1`); `headers` are added to every other answer (a provider's rate-limit
// headers); `next({ omitUsage, disconnectAfter })` changes the next answer (no usage; a stream
// cut after that many events, the socket destroyed).
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'

/** OpenAI chat: 1,200 prompt tokens of which 1,024 cached, 300 completion tokens. */
export const CHAT_USAGE = {
  prompt_tokens: 1_200,
  completion_tokens: 300,
  total_tokens: 1_500,
  prompt_tokens_details: { cached_tokens: 1_024, audio_tokens: 0 },
  completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
}
/** OpenAI Responses: 2,000 input tokens of which 1,024 cached, 900 output of which 600 reasoning. */
export const RESPONSES_USAGE = {
  input_tokens: 2_000,
  input_tokens_details: { cached_tokens: 1_024 },
  output_tokens: 900,
  output_tokens_details: { reasoning_tokens: 600 },
  total_tokens: 2_900,
}
/** Anthropic: 100 plain input, 2,000 cache reads, 500 cache writes, 700 output. */
export const ANTHROPIC_USAGE = {
  input_tokens: 100,
  cache_read_input_tokens: 2_000,
  cache_creation_input_tokens: 500,
  cache_creation: { ephemeral_5m_input_tokens: 500, ephemeral_1h_input_tokens: 0 },
  output_tokens: 700,
  server_tool_use: null,
  service_tier: 'standard',
}

export interface FakeProvider {
  openai: OpenAI
  anthropic: Anthropic
  /** Requests received, by path. */
  requests: string[]
  /** Requests received: path, headers (lower-case names) and parsed body. */
  received: Array<{ url: string; headers: http.IncomingHttpHeaders; body: any }>
  /** Answer the next `n` requests with 429 (with `headers`, default `retry-after-ms: 1`). */
  rateLimit(n: number, headers?: Record<string, string>): void
  /** Headers added to every answer that is not a 429 (until set again). */
  headers: Record<string, string>
  /** Changes the next answer: no usage in it, or a stream cut after `disconnectAfter` events. */
  next(answer: Answer): void
  /** The port the server listens on. */
  port: number
  close(): Promise<void>
}

/** How to answer one request. */
export interface Answer {
  omitUsage?: boolean
  disconnectAfter?: number
}

/** What every answer function gets besides the body. */
interface Reply {
  res: http.ServerResponse
  headers: Record<string, string>
  answer: Answer
}

const json = (r: Reply, value: unknown) => {
  r.res.writeHead(200, { ...r.headers, 'content-type': 'application/json' })
  r.res.end(JSON.stringify(value))
}

const sse = (r: Reply, events: Array<{ event?: string; data: unknown }>, done = false) => {
  const { res } = r
  res.writeHead(200, { ...r.headers, 'content-type': 'text/event-stream' })
  const cut = r.answer.disconnectAfter
  const lines = events.map((e) => `${e.event ? `event: ${e.event}\n` : ''}data: ${JSON.stringify(e.data)}\n\n`)
  if (cut !== undefined) {
    // The connection drops mid-stream, once what came before is on its way.
    res.write(lines.slice(0, cut).join(''), () => setTimeout(() => res.socket?.destroy(), 20))
    return
  }
  for (const l of lines) res.write(l)
  if (done) res.write('data: [DONE]\n\n')
  res.end()
}

function chat(body: any, r: Reply) {
  const base = { id: 'chatcmpl-1', created: 1_764_000_000, model: body.model, system_fingerprint: 'fp_1', service_tier: 'default' }
  if (!body.stream) {
    const answer: any = { ...base, object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: 'Hello!', refusal: null, annotations: [] }, logprobs: null, finish_reason: 'stop' }], usage: CHAT_USAGE }
    if (r.answer.omitUsage) delete answer.usage
    json(r, answer)
    return
  }
  const chunk = (choices: unknown[], usage: unknown = null) => ({ data: { ...base, object: 'chat.completion.chunk', choices, usage } })
  const withUsage = body.stream_options && body.stream_options.include_usage
  const events = [
    chunk([{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]),
    chunk([{ index: 0, delta: { content: 'Hello' }, logprobs: null, finish_reason: null }]),
    chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }]),
  ]
  if (withUsage && !r.answer.omitUsage) events.push(chunk([], CHAT_USAGE))
  else if (!withUsage) for (const e of events) delete (e.data as any).usage
  sse(r, events, true)
}

function responses(body: any, r: Reply) {
  const response = (status: string, usage: unknown) => ({
    id: 'resp_1', object: 'response', created_at: 1_764_000_000, status, model: body.model, output: status === 'completed' ? [{ type: 'message', id: 'msg_1', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text: 'Hello!', annotations: [] }] }] : [],
    parallel_tool_calls: true, tool_choice: 'auto', tools: [], temperature: 1, top_p: 1, error: null, incomplete_details: null, instructions: null, metadata: {}, usage,
  })
  const usage = r.answer.omitUsage ? null : RESPONSES_USAGE
  if (!body.stream) {
    json(r, response('completed', usage))
    return
  }
  let seq = 0
  const ev = (type: string, rest: object) => ({ event: type, data: { type, sequence_number: seq++, ...rest } })
  sse(r, [
    ev('response.created', { response: response('in_progress', null) }),
    ev('response.in_progress', { response: response('in_progress', null) }),
    ev('response.output_text.delta', { item_id: 'msg_1', output_index: 0, content_index: 0, delta: 'Hello!', logprobs: [] }),
    ev('response.completed', { response: response('completed', usage) }),
  ])
}

function messages(body: any, r: Reply) {
  const message = (usage: unknown, done: boolean) => ({
    id: 'msg_1', type: 'message', role: 'assistant', model: body.model, content: done ? [{ type: 'text', text: 'Hello!', citations: null }] : [],
    stop_reason: done ? 'end_turn' : null, stop_sequence: null, usage,
  })
  if (!body.stream) {
    const answer: any = message(ANTHROPIC_USAGE, true)
    if (r.answer.omitUsage) delete answer.usage
    json(r, answer)
    return
  }
  const ev = (type: string, rest: object) => ({ event: type, data: { type, ...rest } })
  sse(r, [
    // message_start: the input (and cache) counts, and output so far.
    ev('message_start', { message: message({ ...ANTHROPIC_USAGE, output_tokens: 1 }, false) }),
    ev('content_block_start', { index: 0, content_block: { type: 'text', text: '', citations: null } }),
    ev('ping', {}),
    ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'Hello!' } }),
    ev('content_block_stop', { index: 0 }),
    // message_delta: running totals (the input repeated, the output so far).
    ev('message_delta', {
      delta: { stop_reason: 'end_turn', stop_sequence: null },
      usage: { input_tokens: 100, cache_read_input_tokens: 2_000, cache_creation_input_tokens: 500, output_tokens: 700, server_tool_use: null },
    }),
    ev('message_stop', {}),
  ])
}

/** A deterministic 16-dimension embedding of each input (letter counts, plus one). */
function embeddings(body: any, r: Reply) {
  const inputs: string[] = Array.isArray(body.input) ? body.input : [body.input]
  const vector = (t: string) => Array.from({ length: 16 }, (_, i) => 1 + [...t.toLowerCase()].filter((ch) => ch.charCodeAt(0) % 16 === i).length)
  // The SDK asks for base64 (little-endian float32) unless the caller chose a format.
  const encode = (v: number[]) => (body.encoding_format === 'base64' ? Buffer.from(new Float32Array(v).buffer).toString('base64') : v)
  const tokens = inputs.reduce((n, t) => n + t.split(/\s+/).length, 0)
  const answer: any = { object: 'list', model: body.model, data: inputs.map((t, index) => ({ object: 'embedding', index, embedding: encode(vector(t)) })), usage: { prompt_tokens: tokens, total_tokens: tokens } }
  if (r.answer.omitUsage) delete answer.usage
  json(r, answer)
}

export async function startFakeProvider(): Promise<FakeProvider> {
  const requests: string[] = []
  const received: FakeProvider['received'] = []
  const answers: Answer[] = []
  let limited = 0
  let limitedHeaders: Record<string, string> = {}
  const fake = {} as FakeProvider
  const server = http.createServer((req, res) => {
    let text = ''
    req.on('data', (c) => (text += c))
    req.on('end', () => {
      requests.push(req.url ?? '')
      const body = text ? JSON.parse(text) : {}
      received.push({ url: req.url ?? '', headers: req.headers, body })
      if (limited > 0) {
        limited--
        res.writeHead(429, { 'content-type': 'application/json', ...limitedHeaders })
        res.end(JSON.stringify({ error: { message: 'Rate limit reached', type: 'requests', code: 'rate_limit_exceeded' } }))
        return
      }
      const r: Reply = { res, headers: fake.headers, answer: answers.shift() ?? {} }
      if (req.url === '/v1/chat/completions') chat(body, r)
      else if (req.url === '/v1/responses') responses(body, r)
      else if (req.url === '/v1/messages') messages(body, r)
      else if (req.url === '/v1/embeddings') embeddings(body, r)
      else {
        res.writeHead(404)
        res.end()
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return Object.assign(fake, {
    openai: new OpenAI({ apiKey: 'test', baseURL: `http://127.0.0.1:${port}/v1` }),
    anthropic: new Anthropic({ apiKey: 'test', baseURL: `http://127.0.0.1:${port}` }),
    requests,
    received,
    headers: {},
    port,
    rateLimit: (n: number, headers: Record<string, string> = { 'retry-after-ms': '1', 'x-ratelimit-remaining-requests': '0' }) => {
      limited = n
      limitedHeaders = headers
    },
    next: (answer: Answer) => void answers.push(answer),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  })
}
