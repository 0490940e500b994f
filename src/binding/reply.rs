//! Replies as numbers: what a call decided, in a fixed layout documented at the function.

use super::error::{coded, INVALID_ARG};

/// Copies `reply` into the front of `out`, the caller's reply buffer; returns its length.
pub fn write(out: &mut [f64], reply: &[f64]) -> napi::Result<u32> {
  let slot = out
    .get_mut(..reply.len())
    .ok_or_else(|| coded(INVALID_ARG, "the reply buffer is too small"))?;
  slot.copy_from_slice(reply);
  Ok(reply.len() as u32)
}
