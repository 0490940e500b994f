// A local fake of the OpenAI and Anthropic HTTP APIs, so the tests get response objects from
// the real `openai` and `@anthropic-ai/sdk` clients — non-streaming and streaming — in exactly
// the shapes those SDKs parse. Usage numbers are fixed (below) so every amount can be checked
// by hand. `rateLimited` requests are answered 429 with a retry-after-ms header.
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
  /** Answer the next `n` requests with 429 (retry-after-ms: 1). */
  rateLimit(n: number): void
  close(): Promise<void>
}

const sse = (res: http.ServerResponse, events: Array<{ event?: string; data: unknown }>, done = false) => {
  res.writeHead(200, { 'content-type': 'text/event-stream' })
  for (const e of events) res.write(`${e.event ? `event: ${e.event}\n` : ''}data: ${JSON.stringify(e.data)}\n\n`)
  if (done) res.write('data: [DONE]\n\n')
  res.end()
}

function chat(body: any, res: http.ServerResponse) {
  const base = { id: 'chatcmpl-1', created: 1_764_000_000, model: body.model, system_fingerprint: 'fp_1', service_tier: 'default' }
  if (!body.stream) {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ ...base, object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: 'Hello!', refusal: null, annotations: [] }, logprobs: null, finish_reason: 'stop' }], usage: CHAT_USAGE }))
    return
  }
  const chunk = (choices: unknown[], usage: unknown = null) => ({ data: { ...base, object: 'chat.completion.chunk', choices, usage } })
  const withUsage = body.stream_options && body.stream_options.include_usage
  const events = [
    chunk([{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]),
    chunk([{ index: 0, delta: { content: 'Hello' }, logprobs: null, finish_reason: null }]),
    chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }]),
  ]
  if (withUsage) events.push(chunk([], CHAT_USAGE))
  else for (const e of events) delete (e.data as any).usage
  sse(res, events, true)
}

function responses(body: any, res: http.ServerResponse) {
  const response = (status: string, usage: unknown) => ({
    id: 'resp_1', object: 'response', created_at: 1_764_000_000, status, model: body.model, output: status === 'completed' ? [{ type: 'message', id: 'msg_1', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text: 'Hello!', annotations: [] }] }] : [],
    parallel_tool_calls: true, tool_choice: 'auto', tools: [], temperature: 1, top_p: 1, error: null, incomplete_details: null, instructions: null, metadata: {}, usage,
  })
  if (!body.stream) {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify(response('completed', RESPONSES_USAGE)))
    return
  }
  let seq = 0
  const ev = (type: string, rest: object) => ({ event: type, data: { type, sequence_number: seq++, ...rest } })
  sse(res, [
    ev('response.created', { response: response('in_progress', null) }),
    ev('response.in_progress', { response: response('in_progress', null) }),
    ev('response.output_text.delta', { item_id: 'msg_1', output_index: 0, content_index: 0, delta: 'Hello!', logprobs: [] }),
    ev('response.completed', { response: response('completed', RESPONSES_USAGE) }),
  ])
}

function messages(body: any, res: http.ServerResponse) {
  const message = (usage: unknown, done: boolean) => ({
    id: 'msg_1', type: 'message', role: 'assistant', model: body.model, content: done ? [{ type: 'text', text: 'Hello!', citations: null }] : [],
    stop_reason: done ? 'end_turn' : null, stop_sequence: null, usage,
  })
  if (!body.stream) {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify(message(ANTHROPIC_USAGE, true)))
    return
  }
  const ev = (type: string, rest: object) => ({ event: type, data: { type, ...rest } })
  sse(res, [
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
function embeddings(body: any, res: http.ServerResponse) {
  const inputs: string[] = Array.isArray(body.input) ? body.input : [body.input]
  const vector = (t: string) => Array.from({ length: 16 }, (_, i) => 1 + [...t.toLowerCase()].filter((ch) => ch.charCodeAt(0) % 16 === i).length)
  // The SDK asks for base64 (little-endian float32) unless the caller chose a format.
  const encode = (v: number[]) => (body.encoding_format === 'base64' ? Buffer.from(new Float32Array(v).buffer).toString('base64') : v)
  const tokens = inputs.reduce((n, t) => n + t.split(/\s+/).length, 0)
  res.writeHead(200, { 'content-type': 'application/json' })
  res.end(JSON.stringify({ object: 'list', model: body.model, data: inputs.map((t, index) => ({ object: 'embedding', index, embedding: encode(vector(t)) })), usage: { prompt_tokens: tokens, total_tokens: tokens } }))
}

export async function startFakeProvider(): Promise<FakeProvider> {
  const requests: string[] = []
  let limited = 0
  const server = http.createServer((req, res) => {
    let text = ''
    req.on('data', (c) => (text += c))
    req.on('end', () => {
      requests.push(req.url ?? '')
      if (limited > 0) {
        limited--
        res.writeHead(429, { 'content-type': 'application/json', 'retry-after-ms': '1', 'x-ratelimit-remaining-requests': '0' })
        res.end(JSON.stringify({ error: { message: 'Rate limit reached', type: 'requests', code: 'rate_limit_exceeded' } }))
        return
      }
      const body = text ? JSON.parse(text) : {}
      if (req.url === '/v1/chat/completions') chat(body, res)
      else if (req.url === '/v1/responses') responses(body, res)
      else if (req.url === '/v1/messages') messages(body, res)
      else if (req.url === '/v1/embeddings') embeddings(body, res)
      else {
        res.writeHead(404)
        res.end()
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    openai: new OpenAI({ apiKey: 'test', baseURL: `http://127.0.0.1:${port}/v1` }),
    anthropic: new Anthropic({ apiKey: 'test', baseURL: `http://127.0.0.1:${port}` }),
    requests,
    rateLimit: (n) => void (limited = n),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}
