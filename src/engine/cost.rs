//! Prices and the cost of a call, in integer nano-dollars (1e-9 USD) end to end, so amounts
//! carry no floating-point noise: a price is nano-dollars per 1M tokens, a cost is the exact
//! sum rounded once to the nearest nano-dollar (halves up). A usage splits the input into
//! uncached, cached (read) and cache-write tokens, so cached tokens are never billed twice.
//!
//! A model is priced only by its exact id or by the provider's dated / versioned ids of that
//! id (`gpt-4o-2024-08-06` → `gpt-4o`, `claude-sonnet-4-5-20250929` → `claude-sonnet-4-5`):
//! never by a prefix that crosses a family (`gpt-4o-mni` is not `gpt-4o`). An unknown id has
//! no price; [`closest`] names the known ids nearest to it.
//!
//! ```
//! use tollgate::engine::cost::{cost_nano, price_of, Usage};
//! let p = price_of("gpt-4o-mini").unwrap();
//! let u = Usage { input: 1_000_000, cached_input: 0, cache_write: 0, output: 1_000_000 };
//! assert_eq!(cost_nano(&u, &p, false), 750_000_000); // $0.75
//! assert_eq!(price_of("gpt-4o-mni"), None);
//! ```

/// Nano-dollars per 1M tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Price {
  pub input: u64,
  /// Cached input (a cache read). Defaults to `input` where the provider has no discount.
  pub cached_input: u64,
  /// Writing input to the cache (Anthropic bills it; others bill plain input).
  pub cache_write: u64,
  pub output: u64,
  /// Share of the price paid through the provider's batch API, in millionths (500,000 = half).
  pub batch_ppm: u64,
}

/// Tokens of one call. `input` counts every input token, cached and cache-write ones included.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
  pub input: u64,
  pub cached_input: u64,
  pub cache_write: u64,
  pub output: u64,
}

/// The cost of `usage` at `price` in nano-dollars, rounded once (halves up); saturates at
/// `u64::MAX`.
pub fn cost_nano(usage: &Usage, price: &Price, batch: bool) -> u64 {
  let uncached = usage
    .input
    .saturating_sub(usage.cached_input.saturating_add(usage.cache_write));
  // Tokens × nano-dollars per 1M tokens: femto-dollars × 1e-6. At most 4 × 2^64 × 2^64 < 2^130
  // would overflow u128, so each term saturates.
  let term = |tokens: u64, price: u64| (tokens as u128).saturating_mul(price as u128);
  let sum = term(uncached, price.input)
    .saturating_add(term(usage.cached_input, price.cached_input))
    .saturating_add(term(usage.cache_write, price.cache_write))
    .saturating_add(term(usage.output, price.output));
  let (num, den) = if batch {
    (
      sum.saturating_mul(price.batch_ppm as u128),
      1_000_000_000_000u128,
    )
  } else {
    (sum, 1_000_000u128)
  };
  u64::try_from((num.saturating_add(den / 2)) / den).unwrap_or(u64::MAX)
}

/// USD per 1M tokens (at most nine decimals) as nano-dollars per 1M tokens.
const fn usd(x: f64) -> u64 {
  (x * 1e9 + 0.5) as u64
}

const fn openai(input: f64, cached: f64, output: f64) -> Price {
  Price {
    input: usd(input),
    cached_input: usd(cached),
    cache_write: usd(input),
    output: usd(output),
    batch_ppm: 500_000,
  }
}

/// Anthropic: cache reads at a tenth of input, 5-minute cache writes at 1.25×.
const fn anthropic(input: f64, output: f64) -> Price {
  let i = usd(input);
  Price {
    input: i,
    cached_input: i / 10,
    cache_write: i * 5 / 4,
    output: usd(output),
    batch_ppm: 500_000,
  }
}

/// Google prices the way OpenAI does: a cached-input price, cache writes at the input price.
const fn google(input: f64, cached: f64, output: f64) -> Price {
  openai(input, cached, output)
}

/// Embedding models bill input only.
const fn embedding(input: f64) -> Price {
  openai(input, input, 0.0)
}

/// List prices (USD per 1M tokens): the cost patterns article's table for the models it names, the providers'
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
  // The first gpt-4o snapshot kept its launch price.
  ("gpt-4o-2024-05-13", openai(5.0, 5.0, 15.0)),
  ("gpt-4o-mini", openai(0.15, 0.075, 0.60)),
  ("o1", openai(15.0, 7.50, 60.0)),
  ("o1-mini", openai(1.10, 0.55, 4.40)),
  ("o3", openai(2.0, 0.50, 8.0)),
  ("o3-mini", openai(1.10, 0.55, 4.40)),
  ("o4-mini", openai(1.10, 0.275, 4.40)),
  ("gpt-4-turbo", openai(10.0, 10.0, 30.0)),
  ("gpt-4", openai(30.0, 30.0, 60.0)),
  ("gpt-3.5-turbo", openai(0.50, 0.50, 1.50)),
  ("text-embedding-3-small", embedding(0.02)),
  ("text-embedding-3-large", embedding(0.13)),
  ("text-embedding-ada-002", embedding(0.10)),
  // Anthropic
  ("claude-opus-4-5", anthropic(5.0, 25.0)),
  ("claude-opus-4-1", anthropic(15.0, 75.0)),
  ("claude-opus-4", anthropic(15.0, 75.0)),
  ("claude-opus-4-0", anthropic(15.0, 75.0)),
  ("claude-sonnet-4-5", anthropic(3.0, 15.0)),
  ("claude-sonnet-4", anthropic(3.0, 15.0)),
  ("claude-sonnet-4-0", anthropic(3.0, 15.0)),
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
      input: usd(0.25),
      cached_input: usd(0.03),
      cache_write: usd(0.30),
      output: usd(1.25),
      batch_ppm: 500_000,
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
  ("gemini-embedding-001", embedding(0.15)),
];

/// The id without what hosts put around it: `models/` (Gemini), a `provider/` path
/// (OpenRouter-style gateways) and Bedrock's `anthropic.` / `us.anthropic.` prefixes.
pub fn bare(model: &str) -> &str {
  let m = model.rsplit('/').next().unwrap_or(model);
  match m.find("anthropic.") {
    Some(i) if m[..i].bytes().all(|b| b.is_ascii_lowercase() || b == b'.') => {
      &m[i + "anthropic.".len()..]
    }
    _ => m,
  }
}

/// Whether `rest` (what follows a catalog id) is a provider's date or version of that id and
/// nothing else: any run of `-2024-08-06`, `-20250929`, `-0613`, `-001`, `-latest`, `-v2`,
/// `-v1:0` and `@20241022` (Vertex). A word (`-mini`, `-nano`, `-preview`, `-32k`) is a
/// different model, never a version.
pub fn is_version_suffix(rest: &str) -> bool {
  let mut s = rest;
  if s.is_empty() {
    return false;
  }
  let digits = |t: &str, n: usize| t.len() == n && t.bytes().all(|b| b.is_ascii_digit());
  while !s.is_empty() {
    let at = s.starts_with('@');
    if !at && !s.starts_with('-') {
      return false;
    }
    let body = &s[1..];
    // `-YYYY-MM-DD` is one token with dashes inside.
    if !at
      && body.len() >= 10
      && digits(&body[..4], 4)
      && &body[4..5] == "-"
      && digits(&body[5..7], 2)
      && &body[7..8] == "-"
      && digits(&body[8..10], 2)
    {
      s = &body[10..];
      continue;
    }
    let end = body.find(['-', '@']).unwrap_or(body.len());
    let token = &body[..end];
    let ok = if at {
      digits(token, 8) || token == "latest"
    } else {
      digits(token, 8)
        || digits(token, 4)
        || digits(token, 3)
        || token == "latest"
        || token.strip_prefix('v').is_some_and(|v| {
          let (major, minor) = v.split_once(':').unwrap_or((v, "0"));
          !major.is_empty()
            && major.bytes().all(|b| b.is_ascii_digit())
            && !minor.is_empty()
            && minor.bytes().all(|b| b.is_ascii_digit())
        })
    };
    if !ok {
      return false;
    }
    s = &body[end..];
  }
  true
}

/// The catalog entry for `model`: the exact id, else the longest catalog id that `model`
/// extends with only a date or version ([`is_version_suffix`]).
pub fn price_of(model: &str) -> Option<Price> {
  lookup(bare(model), CATALOG.iter().map(|(id, p)| (*id, *p)))
}

/// The same matching over any list of `(id, price)` (the JavaScript layer adds user prices).
pub fn lookup<'a>(model: &str, entries: impl Iterator<Item = (&'a str, Price)>) -> Option<Price> {
  let mut best: Option<(usize, Price)> = None;
  for (id, p) in entries {
    let fits = model == id || model.strip_prefix(id).is_some_and(is_version_suffix);
    if fits && best.is_none_or(|(len, _)| id.len() > len) {
      best = Some((id.len(), p));
    }
  }
  best.map(|(_, p)| p)
}

/// Edit distance (insertions, deletions, substitutions, swaps of neighbours) of two ids.
fn distance(a: &str, b: &str) -> usize {
  let a: Vec<char> = a.chars().collect();
  let b: Vec<char> = b.chars().collect();
  let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
  for (i, row) in rows.iter_mut().enumerate() {
    row[0] = i;
  }
  for (j, cell) in rows[0].iter_mut().enumerate() {
    *cell = j;
  }
  for i in 1..=a.len() {
    for j in 1..=b.len() {
      let sub = usize::from(a[i - 1] != b[j - 1]);
      let mut d = (rows[i - 1][j] + 1)
        .min(rows[i][j - 1] + 1)
        .min(rows[i - 1][j - 1] + sub);
      if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
        d = d.min(rows[i - 2][j - 2] + 1);
      }
      rows[i][j] = d;
    }
  }
  rows[a.len()][b.len()]
}

/// Up to `n` of `ids` nearest to `model` (by edit distance, then catalog order), for an
/// error message that says what was probably meant.
pub fn closest<'a>(model: &str, ids: impl Iterator<Item = &'a str>, n: usize) -> Vec<&'a str> {
  let m = bare(model).to_ascii_lowercase();
  let mut scored: Vec<(usize, usize, &str)> = ids
    .enumerate()
    .map(|(i, id)| (distance(&m, id), i, id))
    .collect();
  scored.sort();
  let mut out: Vec<&str> = Vec::new();
  for (_, _, id) in scored {
    if !out.contains(&id) {
      out.push(id);
    }
    if out.len() == n {
      break;
    }
  }
  out
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn models_find_their_family_and_nothing_else() {
    assert_eq!(price_of("gpt-4o-2024-08-06"), price_of("gpt-4o"));
    assert_eq!(price_of("gpt-4o-mini-2024-07-18"), price_of("gpt-4o-mini"));
    assert_ne!(price_of("gpt-4o-2024-05-13"), price_of("gpt-4o"));
    assert_ne!(price_of("gpt-4o-mini"), price_of("gpt-4o"));
    assert_eq!(
      price_of("claude-3-5-sonnet-20241022"),
      price_of("claude-3-5-sonnet")
    );
    assert_eq!(
      price_of("claude-sonnet-4-5-20250929"),
      price_of("claude-sonnet-4-5")
    );
    assert_eq!(
      price_of("claude-3-5-sonnet-latest"),
      price_of("claude-3-5-sonnet")
    );
    assert_eq!(
      price_of("claude-3-5-sonnet-v2@20241022"),
      price_of("claude-3-5-sonnet")
    );
    assert_eq!(
      price_of("us.anthropic.claude-sonnet-4-20250514-v1:0"),
      price_of("claude-sonnet-4")
    );
    assert_eq!(price_of("gpt-4-0613"), price_of("gpt-4"));
    assert_eq!(price_of("gemini-1.5-pro-002"), price_of("gemini-1.5-pro"));
    assert_eq!(
      price_of("models/gemini-2.5-pro"),
      price_of("gemini-2.5-pro")
    );
    for near_miss in [
      "gpt-4o-mni",
      "gpt-5-nanoo",
      "gpt-4.1-nanno",
      "o3-minii",
      "gpt-4o1",
      "gpt-4-32k",
      "gpt-4-0125-preview",
      "claude-sonnet-4-6",
      "llama-3",
      "gpt-4o-",
    ] {
      assert_eq!(price_of(near_miss), None, "{near_miss}");
    }
  }

  #[test]
  fn suggestions_name_the_intended_model_first() {
    let ids = || CATALOG.iter().map(|(id, _)| *id);
    assert_eq!(closest("gpt-4o-mni", ids(), 3)[0], "gpt-4o-mini");
    assert_eq!(closest("gpt-5-nanoo", ids(), 3)[0], "gpt-5-nano");
    assert_eq!(closest("o3-minii", ids(), 3)[0], "o3-mini");
    assert_eq!(closest("GPT-4.1-NANNO", ids(), 1), vec!["gpt-4.1-nano"]);
  }

  #[test]
  fn golden_costs_in_nano_dollars() {
    // OpenAI gpt-4o: 10,000 prompt tokens of which 4,000 cached, 500 output.
    let u = Usage {
      input: 10_000,
      cached_input: 4_000,
      cache_write: 0,
      output: 500,
    };
    assert_eq!(
      cost_nano(&u, &price_of("gpt-4o").unwrap(), false),
      25_000_000
    );
    // Anthropic claude-sonnet-4: 1,000 plain + 2,000 cache read + 3,000 cache write, 700 out.
    let u = Usage {
      input: 6_000,
      cached_input: 2_000,
      cache_write: 3_000,
      output: 700,
    };
    let p = price_of("claude-sonnet-4").unwrap();
    assert_eq!(cost_nano(&u, &p, false), 25_350_000);
    assert_eq!(cost_nano(&u, &p, true), 12_675_000);
    // Gemini 2.5 flash with cached content.
    let u = Usage {
      input: 100_000,
      cached_input: 60_000,
      cache_write: 0,
      output: 2_000,
    };
    assert_eq!(
      cost_nano(&u, &price_of("gemini-2.5-flash").unwrap(), false),
      21_500_000
    );
    // The cost patterns article's example: 12 input tokens and 100 output on gpt-4o-mini: $0.0000618.
    let u = Usage {
      input: 12,
      output: 100,
      ..Usage::default()
    };
    assert_eq!(
      cost_nano(&u, &price_of("gpt-4o-mini").unwrap(), false),
      61_800
    );
    // 22 input tokens of gpt-4o-mini: $0.0000033 exactly (a float sum gives 3.2999…e-6).
    let u = Usage {
      input: 22,
      ..Usage::default()
    };
    assert_eq!(
      cost_nano(&u, &price_of("gpt-4o-mini").unwrap(), false),
      3_300
    );
    // One cached token of gemini-1.5-flash is 18.75 nano-dollars: rounded once, half up.
    let u = Usage {
      input: 1,
      cached_input: 1,
      ..Usage::default()
    };
    assert_eq!(
      cost_nano(&u, &price_of("gemini-1.5-flash").unwrap(), false),
      19
    );
    // Embeddings bill input only.
    let u = Usage {
      input: 1_000_000,
      output: 5,
      ..Usage::default()
    };
    assert_eq!(
      cost_nano(&u, &price_of("text-embedding-3-small").unwrap(), false),
      20_000_000
    );
  }

  #[test]
  fn huge_usages_saturate() {
    let u = Usage {
      input: u64::MAX,
      cached_input: 0,
      cache_write: 0,
      output: u64::MAX,
    };
    assert_eq!(cost_nano(&u, &price_of("o1").unwrap(), true), u64::MAX);
  }
}
