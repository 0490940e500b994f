// The policy shared by guard-worker.cjs and the test that starts it: one limit of every measure.
'use strict'
const LIMITS = [
  { id: 'user-rph', scope: (c) => c.user, requests: 400, per: '1h' },
  { id: 'user-tpd', scope: (c) => c.user, tokens: 15_000, per: 'day' },
  { id: 'org-usd', scope: (c) => c.org, usd: 1, per: 'month' },
  { id: 'provider-tpm', scope: () => 'openai', inputTokens: 1_000_000, per: '1m' },
  { id: 'conc', scope: (c) => c.model, concurrent: 8 },
]
module.exports = { LIMITS }
