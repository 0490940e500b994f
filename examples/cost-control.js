'use strict'
// The cost patterns article's LLMClient, on tollgate: count tokens, pick a model tier with a
// budget-aware downgrade, reserve the estimated cost before the call, retry 429s and 5xx,
// settle the real cost from the response's usage, alert once per threshold.
// A simulated OpenAI-style provider (no network). Embedded store; set REDIS_URL for Redis.
//
//   node examples/cost-control.js

const { CostTracker, ModelTiers, MemoryStore, RedisStore, countMessageTokens, estimateCost, usageFrom, withRetry } = require('../lib/index.js')

const store = process.env.REDIS_URL ? new RedisStore(process.env.REDIS_URL) : new MemoryStore()
const tracker = new CostTracker(store, {
  prefix: `example:${process.pid}:`,
  dailyBudget: 0.1, // tiny on purpose: the run shows the alerts and the downgrade
  monthlyBudget: 10,
  alertThresholds: [0.5, 0.9],
  onAlert: (message) => console.log(`  ALERT     ${message}`),
})
const tiers = new ModelTiers({ tracker })

let calls = 0
/** An OpenAI-style chat completion; the first call of every three answers 429 once. */
async function simulatedOpenAI({ model, messages, max_tokens }) {
  calls++
  if (calls % 3 === 1) {
    const err = new Error('Rate limit reached')
    err.status = 429
    err.headers = { 'retry-after-ms': '20' }
    throw err
  }
  const prompt_tokens = countMessageTokens(messages, model)
  const completion_tokens = Math.round(max_tokens * 0.567) // long answers: the budget runs down fast
  return {
    object: 'chat.completion',
    model,
    choices: [{ message: { role: 'assistant', content: `(${model}) an answer` } }],
    usage: { prompt_tokens, completion_tokens, total_tokens: prompt_tokens + completion_tokens, prompt_tokens_details: { cached_tokens: 0 } },
  }
}

async function ask(task, prompt) {
  const messages = [{ role: 'user', content: prompt }]
  const inputTokens = countMessageTokens(messages, 'gpt-4o')
  const tier = await tiers.selectModel(task, { inputTokens })
  console.log(`${task}: "${prompt.slice(0, 50)}"`)
  console.log(`  model     ${tier.model} (${tier.reason}${tier.budgetUsed === null ? '' : `, ${(tier.budgetUsed * 100).toFixed(0)}% of budget used`})`)
  // Expect about half of max_tokens back; settle() replaces the estimate with the real cost.
  const { estimatedCost } = estimateCost(inputTokens, tier.maxTokens / 2, tier.model)
  const { hold, daily } = await tracker.reserve(estimatedCost, { model: tier.model, tags: { feature: task } })
  if (!hold) {
    console.log(`  REFUSED   estimate $${estimatedCost.toFixed(4)} does not fit: $${daily.spent.toFixed(4)} spent, $${daily.reserved.toFixed(4)} held of $${daily.budget}`)
    return
  }
  try {
    const completion = await withRetry(() => simulatedOpenAI({ model: tier.model, messages, max_tokens: tier.maxTokens }), { maxRetries: 3, baseDelayMs: 10 })
    const { cost, daily: after } = await tracker.settle(hold, completion)
    const u = usageFrom(completion)
    console.log(`  call      ${u.inputTokens} in / ${u.outputTokens} out → $${cost.toFixed(6)} (estimated $${estimatedCost.toFixed(6)})`)
    console.log(`  today     $${after.spent.toFixed(6)} of $${after.budget}`)
  } catch (e) {
    await tracker.release(hold)
    throw e
  }
}

async function main() {
  await ask('simple', 'Is this review positive? "Loved it"')
  for (const topic of ['sliding and fixed windows', 'exact and semantic caching', 'token and dollar budgets', 'quota routing across API keys']) {
    await ask('complex', `Write a detailed analysis of the trade-offs between ${topic} for LLM traffic across many workers.`)
  }
  // Above 90 % of the day's budget: nothing above the standard tier any more.
  await ask('complex', 'Design a budget enforcement scheme for a multi-tenant LLM gateway with per-tenant daily limits.')
  await ask('standard', 'Summarise the plot of Hamlet in two sentences for a newsletter audience.')
  const totals = await tracker.totals()
  console.log('')
  console.log(`spend today $${totals.daily.spent.toFixed(6)} by feature ${JSON.stringify(totals.daily.byTag.feature)}`)
  console.log(`over budget? ${JSON.stringify(await tracker.isOverBudget())}`)
  if (store instanceof RedisStore) await store.close()
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
