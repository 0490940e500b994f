'use strict'
// OpenTelemetry metrics of guarded calls, recorded through `@opentelemetry/api` when it is
// installed (an optional peer dependency; without it nothing is loaded and nothing costs). The
// API's global MeterProvider is used unless one is given, so an app that registers the
// OpenTelemetry SDK gets these with no tollgate setup; without an SDK the API is a no-op.
//
// The GenAI semantic conventions' client metrics (gen_ai.*), recorded once per settled call:
// - gen_ai.client.token.usage (histogram, {token}): gen_ai.token.type = input | output
// - gen_ai.client.operation.duration (histogram, s): acquire to settle (or cancel, with
//   error.type = cancelled)
// with gen_ai.operation.name ('chat'), gen_ai.provider.name (the spec's current name for what it
// called gen_ai.system) and gen_ai.request.model.
//
// tollgate's own, named in the same style:
// - tollgate.guard.decisions (counter, {decision}): tollgate.outcome = admitted | refused |
//   cached, tollgate.limit = the refusing limit's id, tollgate.fallback = the policy that answered
// - tollgate.guard.cost (counter, USD): the real cost of settled calls (a dollar limit prices them)
// - tollgate.guard.limit.utilization (histogram, 1): per applicable limit at each admitted
//   decision, the share of the limit in use, tollgate.limit = its id
//
// Attributes are bounded: limit ids (the policy's), models, providers, outcomes. Scopes (user
// ids, orgs, keys) are never attributes.

let api
function loadApi() {
  if (api === undefined) {
    try {
      api = require('@opentelemetry/api')
    } catch {
      api = null
    }
  }
  return api
}

/** The provider a model id belongs to, by its well-known prefixes (else 'unknown'). */
function providerOf(model) {
  if (/^(gpt-|o\d|chatgpt-|text-embedding-|dall-e|whisper|tts-|davinci|babbage)/.test(model)) return 'openai'
  if (model.startsWith('claude')) return 'anthropic'
  if (model.startsWith('gemini') || model.startsWith('gemma')) return 'gcp.gemini'
  if (/^(mistral|mixtral|codestral|ministral|pixtral|open-mistral)/.test(model)) return 'mistral_ai'
  if (model.startsWith('command') || model.startsWith('embed-')) return 'cohere'
  if (model.startsWith('deepseek')) return 'deepseek'
  if (model.startsWith('grok')) return 'x_ai'
  return 'unknown'
}

class GuardTelemetry {
  #tokens
  #duration
  #decisions
  #cost
  #utilization
  #provider

  constructor(meter, provider) {
    this.#provider = provider
    this.#tokens = meter.createHistogram('gen_ai.client.token.usage', {
      description: 'Measures number of input and output tokens used',
      unit: '{token}',
      advice: { explicitBucketBoundaries: [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864] },
    })
    this.#duration = meter.createHistogram('gen_ai.client.operation.duration', {
      description: 'GenAI operation duration',
      unit: 's',
      advice: { explicitBucketBoundaries: [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92] },
    })
    this.#decisions = meter.createCounter('tollgate.guard.decisions', { description: 'Guard decisions, by outcome and refusing limit', unit: '{decision}' })
    this.#cost = meter.createCounter('tollgate.guard.cost', { description: 'Real cost of settled calls', unit: 'USD' })
    this.#utilization = meter.createHistogram('tollgate.guard.limit.utilization', {
      description: 'Share of each applicable limit in use after an admitted decision',
      unit: '1',
      advice: { explicitBucketBoundaries: [0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1] },
    })
  }

  /** model → its attribute sets, made once (at most 1,024 models). */
  #attrs = new Map()

  #for(model) {
    let a = this.#attrs.get(model)
    if (a === undefined) {
      const base = Object.freeze({ 'gen_ai.operation.name': 'chat', 'gen_ai.provider.name': this.#provider(model), 'gen_ai.request.model': model })
      a = {
        base,
        input: Object.freeze({ ...base, 'gen_ai.token.type': 'input' }),
        output: Object.freeze({ ...base, 'gen_ai.token.type': 'output' }),
        cancelled: Object.freeze({ ...base, 'error.type': 'cancelled' }),
        admitted: Object.freeze({ 'tollgate.outcome': 'admitted', 'gen_ai.request.model': model }),
      }
      if (this.#attrs.size >= 1024) this.#attrs.clear()
      this.#attrs.set(model, a)
    }
    return a
  }

  /** A decision was made (`limits`: the applicable ones, with their maxima). */
  decided(d, model, limits) {
    const cached = d.cached !== null && d.cached !== undefined
    let a
    if (d.ok && !cached && !d.fallback) a = this.#for(model).admitted
    else {
      a = { 'tollgate.outcome': cached ? 'cached' : d.ok ? 'admitted' : 'refused', 'gen_ai.request.model': model }
      if (!d.ok) a['tollgate.limit'] = d.limit
      if (d.fallback) a['tollgate.fallback'] = d.fallback
    }
    this.#decisions.add(1, a)
    if (d.ok && limits !== null) {
      for (const l of limits) {
        const left = d.remaining[l.id]
        if (left === undefined || l.max === 0) continue
        const max = l.shown(l.max)
        this.#utilization.record(Math.min(1, Math.max(0, (max - left) / max)), { 'tollgate.limit': l.id })
      }
    }
  }

  /** A call ended: settled with `usage` (cost in USD, or null when not priced) or cancelled. */
  ended(model, startedAt, usage, usd) {
    const a = this.#for(model)
    const seconds = Math.max(0, (performance.now() - startedAt) / 1000)
    if (usage === null) {
      this.#duration.record(seconds, a.cancelled)
      return
    }
    this.#duration.record(seconds, a.base)
    this.#tokens.record(usage.inputTokens, a.input)
    this.#tokens.record(usage.outputTokens, a.output)
    if (usd !== null) this.#cost.add(usd, a.base)
  }
}

/**
 * The telemetry of a guard from its `telemetry` option: `false` turns it off; `{ meterProvider,
 * provider }` picks the MeterProvider (default: the API's global one) and how a model's provider
 * is named. Null when `@opentelemetry/api` is not installed or telemetry is off.
 */
function telemetryFor(option, version) {
  if (option === false) return null
  const o = option === undefined || option === true ? {} : option
  const otel = loadApi()
  if (otel === null) return null
  const provider = typeof o.provider === 'function' ? o.provider : providerOf
  if (o.meterProvider) return new GuardTelemetry(o.meterProvider.getMeter('tollgate', version), provider)
  return new GlobalTelemetry(otel, version, provider)
}

/**
 * Telemetry through the API's global MeterProvider, which an app may register after its guards
 * are made: while it is the API's no-op, nothing is recorded (and nothing is built per call);
 * instruments are made from whatever provider is registered when it changes.
 */
class GlobalTelemetry {
  #otel
  #version
  #provider
  #current = null
  #telemetry = null

  constructor(otel, version, provider) {
    this.#otel = otel
    this.#version = version
    this.#provider = provider
  }

  #active() {
    const p = this.#otel.metrics.getMeterProvider()
    if (p !== this.#current) {
      this.#current = p
      this.#telemetry = p.constructor && p.constructor.name === 'NoopMeterProvider' ? null : new GuardTelemetry(p.getMeter('tollgate', this.#version), this.#provider)
    }
    return this.#telemetry
  }

  decided(d, model, limits) {
    const t = this.#active()
    if (t !== null) t.decided(d, model, limits)
  }

  ended(model, startedAt, usage, usd) {
    const t = this.#active()
    if (t !== null) t.ended(model, startedAt, usage, usd)
  }
}

module.exports = { telemetryFor, providerOf }
