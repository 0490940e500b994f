//! Prices and costs (lib/cost.js): the built-in catalog, prices a user defines (process-wide,
//! checked first), and the cost of a usage. Amounts cross as integers in f64: nano-dollars
//! per 1M tokens for prices, nano-dollars for costs, millionths for the batch share.

use std::sync::RwLock;

use napi_derive::napi;

use crate::engine::cost::{self, Price, Usage};

static DEFINED: RwLock<Vec<(String, Price)>> = RwLock::new(Vec::new());

fn to_vec(p: Price) -> Vec<f64> {
  vec![
    p.input as f64,
    p.cached_input as f64,
    p.cache_write as f64,
    p.output as f64,
    p.batch_ppm as f64,
  ]
}

fn from_vec(v: &[f64]) -> Price {
  // lib/cost.js passes integers ≥ 0; anything else is clamped, never a panic.
  let at = |i: usize| v.get(i).copied().unwrap_or(0.0).max(0.0) as u64;
  Price {
    input: at(0),
    cached_input: at(1),
    cache_write: at(2),
    output: at(3),
    batch_ppm: at(4),
  }
}

/// `[input, cachedInput, cacheWrite, output, batchPpm]` for `model` (nano-dollars per 1M
/// tokens), or null when neither a defined price nor the catalog has it.
#[napi(catch_unwind)]
pub fn price_of_model(model: String) -> Option<Vec<f64>> {
  let defined = DEFINED.read().unwrap_or_else(|p| p.into_inner());
  let m = cost::bare(&model);
  cost::lookup(m, defined.iter().map(|(id, p)| (id.as_str(), *p)))
    .or_else(|| cost::price_of(&model))
    .map(to_vec)
}

/// The known ids (defined first, then the catalog) nearest to `model`, at most `n`.
#[napi(catch_unwind)]
pub fn closest_models(model: String, n: u32) -> Vec<String> {
  let defined = DEFINED.read().unwrap_or_else(|p| p.into_inner());
  let ids = defined
    .iter()
    .map(|(id, _)| id.as_str())
    .chain(cost::CATALOG.iter().map(|(id, _)| *id));
  cost::closest(&model, ids, n as usize)
    .into_iter()
    .map(str::to_owned)
    .collect()
}

/// Every id of the built-in catalog, in its order.
#[napi(catch_unwind)]
pub fn catalog_models() -> Vec<String> {
  cost::CATALOG
    .iter()
    .map(|(id, _)| (*id).to_owned())
    .collect()
}

/// Defines (or replaces) the price of `model` and of its dated and versioned ids.
#[napi(catch_unwind)]
pub fn define_model_price(model: String, price: Vec<f64>) {
  let p = from_vec(&price);
  let mut defined = DEFINED.write().unwrap_or_else(|p| p.into_inner());
  defined.retain(|(id, _)| *id != model);
  defined.push((model, p));
}

/// Nano-dollars for `input`, `cached`, `write` and `output` tokens at the price
/// `[input, cachedInput, cacheWrite, output, batchDiscount]` given as five numbers: the same
/// sum as `cost_nano_of_usage`, for hot paths (numbers cross napi without an array to read).
#[napi(catch_unwind)]
#[allow(clippy::too_many_arguments)]
pub fn cost_nano_parts(
  input: f64,
  cached: f64,
  write: f64,
  output: f64,
  p_input: f64,
  p_cached: f64,
  p_write: f64,
  p_output: f64,
  p_batch: f64,
) -> f64 {
  let n = |x: f64| x.max(0.0) as u64;
  let u = Usage {
    input: n(input),
    cached_input: n(cached),
    cache_write: n(write),
    output: n(output),
  };
  let price = from_vec(&[p_input, p_cached, p_write, p_output, p_batch]);
  cost::cost_nano(&u, &price, false) as f64
}

/// Nano-dollars for `[input, cachedInput, cacheWrite, output]` tokens at `price`.
#[napi(catch_unwind)]
pub fn cost_nano_of_usage(usage: Vec<f64>, price: Vec<f64>, batch: bool) -> f64 {
  let at = |i: usize| usage.get(i).copied().unwrap_or(0.0).max(0.0) as u64;
  let u = Usage {
    input: at(0),
    cached_input: at(1),
    cache_write: at(2),
    output: at(3),
  };
  cost::cost_nano(&u, &from_vec(&price), batch) as f64
}
