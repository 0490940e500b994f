//! Prices and costs (lib/cost.js): the built-in catalog, prices a user defines (process-wide,
//! checked first), and the cost of a usage.

use std::sync::RwLock;

use napi_derive::napi;

use crate::engine::cost::{self, Price, Usage};

static DEFINED: RwLock<Vec<(String, Price)>> = RwLock::new(Vec::new());

fn to_vec(p: Price) -> Vec<f64> {
  vec![p.input, p.cached_input, p.cache_write, p.output, p.batch]
}

/// `[input, cachedInput, cacheWrite, output, batch]` for `model`, or null when unknown.
#[napi(catch_unwind)]
pub fn price_of_model(model: String) -> Option<Vec<f64>> {
  let defined = DEFINED.read().unwrap_or_else(|p| p.into_inner());
  let m = model.strip_prefix("models/").unwrap_or(&model);
  cost::lookup(m, defined.iter().map(|(id, p)| (id.as_str(), *p)))
    .or_else(|| cost::price_of(&model))
    .map(to_vec)
}

/// Defines (or replaces) the price of `model` and the models that extend its id.
#[napi(catch_unwind)]
pub fn define_model_price(model: String, price: Vec<f64>) {
  let at = |i: usize| price.get(i).copied().unwrap_or(0.0);
  let p = Price {
    input: at(0),
    cached_input: at(1),
    cache_write: at(2),
    output: at(3),
    batch: at(4),
  };
  let mut defined = DEFINED.write().unwrap_or_else(|p| p.into_inner());
  defined.retain(|(id, _)| *id != model);
  defined.push((model, p));
}

/// USD for `[input, cachedInput, cacheWrite, output]` tokens at `price`.
#[napi(catch_unwind)]
pub fn cost_of_usage(usage: Vec<f64>, price: Vec<f64>, batch: bool) -> f64 {
  let at = |v: &Vec<f64>, i: usize| v.get(i).copied().unwrap_or(0.0);
  let u = Usage {
    input: at(&usage, 0),
    cached_input: at(&usage, 1),
    cache_write: at(&usage, 2),
    output: at(&usage, 3),
  };
  let p = Price {
    input: at(&price, 0),
    cached_input: at(&price, 1),
    cache_write: at(&price, 2),
    output: at(&price, 3),
    batch: at(&price, 4),
  };
  cost::cost_of(&u, &p, batch)
}
