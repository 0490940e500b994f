//! Prices and the cost of a call. Prices are USD per 1M tokens; a usage splits the input into
//! uncached, cached (read) and cache-write tokens, so cached tokens are never billed twice.
//!
//! ```
//! use tollgate::engine::cost::{cost_of, price_of, Usage};
//! let p = price_of("gpt-4o-mini").unwrap();
//! let u = Usage { input: 1_000_000.0, cached_input: 0.0, cache_write: 0.0, output: 1_000_000.0 };
//! assert!((cost_of(&u, &p, false) - 0.75).abs() < 1e-12);
//! ```

/// USD per 1M tokens.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Price {
  pub input: f64,
  /// Cached input (a cache read). Defaults to `input` where the provider has no discount.
  pub cached_input: f64,
  /// Writing input to the cache (Anthropic bills it; others bill plain input).
  pub cache_write: f64,
  pub output: f64,
  /// Share of the price paid through the provider's batch API (0.5 = half price).
  pub batch: f64,
}

/// Tokens of one call. `input` counts every input token, cached and cache-write ones included.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Usage {
  pub input: f64,
  pub cached_input: f64,
  pub cache_write: f64,
  pub output: f64,
}

/// The cost of `usage` at `price`, in USD.
pub fn cost_of(usage: &Usage, price: &Price, batch: bool) -> f64 {
  let uncached = (usage.input - usage.cached_input - usage.cache_write).max(0.0);
  let usd = (uncached * price.input
    + usage.cached_input * price.cached_input
    + usage.cache_write * price.cache_write
    + usage.output * price.output)
    / 1_000_000.0;
  if batch {
    usd * price.batch
  } else {
    usd
  }
}

const fn openai(input: f64, cached: f64, output: f64) -> Price {
  Price {
    input,
    cached_input: cached,
    cache_write: input,
    output,
    batch: 0.5,
  }
}

/// Anthropic: cache reads at a tenth of input, 5-minute cache writes at 1.25×.
const fn anthropic(input: f64, output: f64) -> Price {
  Price {
    input,
    cached_input: input / 10.0,
    cache_write: input * 1.25,
    output,
    batch: 0.5,
  }
}

/// Google prices the way OpenAI does: a cached-input price, cache writes at the input price.
const fn google(input: f64, cached: f64, output: f64) -> Price {
  openai(input, cached, output)
}

/// List prices (USD per 1M tokens): the seed's table for the models it names, the providers'
/// published prices for the others (Gemini: prompts up to 200k tokens). Prices change: check
/// them against your invoices and override with `definePrice` in JavaScript.
pub const CATALOG: &[(&str, Price)] = &[
  // OpenAI
  ("gpt-5", openai(1.25, 0.125, 10.0)),
  ("gpt-5-mini", openai(0.25, 0.025, 2.0)),
  ("gpt-5-nano", openai(0.05, 0.005, 0.40)),
  ("gpt-4.1", openai(2.0, 0.50, 8.0)),
  ("gpt-4.1-mini", openai(0.40, 0.10, 1.60)),
  ("gpt-4.1-nano", openai(0.10, 0.025, 0.40)),
  ("gpt-4o", openai(2.50, 1.25, 10.0)),
  ("gpt-4o-mini", openai(0.15, 0.075, 0.60)),
  ("o1", openai(15.0, 7.50, 60.0)),
  ("o1-mini", openai(1.10, 0.55, 4.40)),
  ("o3", openai(2.0, 0.50, 8.0)),
  ("o3-mini", openai(1.10, 0.55, 4.40)),
  ("o4-mini", openai(1.10, 0.275, 4.40)),
  ("gpt-4-turbo", openai(10.0, 10.0, 30.0)),
  ("gpt-4", openai(30.0, 30.0, 60.0)),
  ("gpt-3.5-turbo", openai(0.50, 0.50, 1.50)),
  // Anthropic
  ("claude-opus-4-5", anthropic(5.0, 25.0)),
  ("claude-opus-4-1", anthropic(15.0, 75.0)),
  ("claude-opus-4", anthropic(15.0, 75.0)),
  ("claude-sonnet-4-5", anthropic(3.0, 15.0)),
  ("claude-sonnet-4", anthropic(3.0, 15.0)),
  ("claude-haiku-4-5", anthropic(1.0, 5.0)),
  ("claude-3-7-sonnet", anthropic(3.0, 15.0)),
  ("claude-3-5-sonnet", anthropic(3.0, 15.0)),
  ("claude-3-5-haiku", anthropic(0.80, 4.0)),
  ("claude-haiku-3.5", anthropic(0.80, 4.0)),
  ("claude-3-opus", anthropic(15.0, 75.0)),
  ("claude-3-sonnet", anthropic(3.0, 15.0)),
  (
    "claude-3-haiku",
    Price {
      input: 0.25,
      cached_input: 0.03,
      cache_write: 0.30,
      output: 1.25,
      batch: 0.5,
    },
  ),
  // Google
  ("gemini-2.5-pro", google(1.25, 0.31, 10.0)),
  ("gemini-2.5-flash", google(0.30, 0.075, 2.50)),
  ("gemini-2.5-flash-lite", google(0.10, 0.025, 0.40)),
  ("gemini-2.0-flash", google(0.10, 0.025, 0.40)),
  ("gemini-2.0-flash-lite", google(0.075, 0.075, 0.30)),
  ("gemini-1.5-pro", google(1.25, 0.3125, 5.0)),
  ("gemini-1.5-flash", google(0.075, 0.01875, 0.30)),
];

/// The catalog entry for `model`: the exact id, else the longest catalog id that `model`
/// extends with a version or date (`gpt-4o-2024-08-06` → `gpt-4o`, `claude-3-5-sonnet-latest`
/// → `claude-3-5-sonnet`, `models/gemini-2.5-pro` → `gemini-2.5-pro`).
pub fn price_of(model: &str) -> Option<Price> {
  let m = model.strip_prefix("models/").unwrap_or(model);
  let m = m.rsplit('/').next().unwrap_or(m);
  lookup(m, CATALOG.iter().map(|(id, p)| (*id, *p)))
}

/// The same matching over any list of `(id, price)` (the JavaScript layer adds user prices).
pub fn lookup<'a>(model: &str, entries: impl Iterator<Item = (&'a str, Price)>) -> Option<Price> {
  let mut best: Option<(usize, Price)> = None;
  for (id, p) in entries {
    let fits = model == id
      || model
        .strip_prefix(id)
        .is_some_and(|rest| rest.starts_with(['-', '@', ':']));
    if fits && best.is_none_or(|(len, _)| id.len() > len) {
      best = Some((id.len(), p));
    }
  }
  best.map(|(_, p)| p)
}

#[cfg(test)]
mod tests {
  use super::*;

  fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-9, "{a} != {b}");
  }

  #[test]
  fn models_find_their_family() {
    assert_eq!(price_of("gpt-4o-2024-08-06"), price_of("gpt-4o"));
    assert_eq!(price_of("gpt-4o-mini-2024-07-18"), price_of("gpt-4o-mini"));
    assert_ne!(price_of("gpt-4o-mini"), price_of("gpt-4o"));
    assert_eq!(
      price_of("claude-3-5-sonnet-20241022"),
      price_of("claude-3-5-sonnet")
    );
    assert_eq!(
      price_of("claude-sonnet-4-20250514"),
      price_of("claude-sonnet-4")
    );
    assert_ne!(price_of("claude-sonnet-4-5-20250929"), None);
    assert_eq!(
      price_of("models/gemini-2.5-pro"),
      price_of("gemini-2.5-pro")
    );
    assert_eq!(
      price_of("gemini-2.5-flash-lite"),
      CATALOG
        .iter()
        .find(|(id, _)| *id == "gemini-2.5-flash-lite")
        .map(|x| x.1)
    );
    assert_eq!(price_of("gpt-4o1"), None);
    assert_eq!(price_of("llama-3"), None);
  }

  #[test]
  fn golden_costs() {
    // OpenAI gpt-4o: 10,000 prompt tokens of which 4,000 cached, 500 output.
    let u = Usage {
      input: 10_000.0,
      cached_input: 4_000.0,
      cache_write: 0.0,
      output: 500.0,
    };
    close(
      cost_of(&u, &price_of("gpt-4o").unwrap(), false),
      (6_000.0 * 2.5 + 4_000.0 * 1.25 + 500.0 * 10.0) / 1e6,
    );
    // Anthropic claude-sonnet-4: 1,000 plain + 2,000 cache read + 3,000 cache write, 700 out.
    let u = Usage {
      input: 6_000.0,
      cached_input: 2_000.0,
      cache_write: 3_000.0,
      output: 700.0,
    };
    close(
      cost_of(&u, &price_of("claude-sonnet-4").unwrap(), false),
      0.003 + 0.0006 + 0.01125 + 0.0105,
    );
    // Batch halves it.
    close(
      cost_of(&u, &price_of("claude-sonnet-4").unwrap(), true),
      (0.003 + 0.0006 + 0.01125 + 0.0105) / 2.0,
    );
    // Gemini 2.5 flash with cached content.
    let u = Usage {
      input: 100_000.0,
      cached_input: 60_000.0,
      cache_write: 0.0,
      output: 2_000.0,
    };
    close(
      cost_of(&u, &price_of("gemini-2.5-flash").unwrap(), false),
      0.012 + 0.0045 + 0.005,
    );
    // The seed's example: 12 input tokens and 100 output on gpt-4o-mini.
    let u = Usage {
      input: 12.0,
      output: 100.0,
      ..Usage::default()
    };
    close(
      cost_of(&u, &price_of("gpt-4o-mini").unwrap(), false),
      0.0000618,
    );
  }
}
