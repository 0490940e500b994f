//! Errors crossing into Node. Every native error's message starts with a stable code,
//! `ERR_TOLLGATE_…: message`; the JavaScript layer (`lib/errors.js`) turns it into a
//! `TypeError`, `RangeError` or `StoreError` of the caller's realm with `err.code` set. One
//! format for sync throws and async rejections alike, because napi cannot attach a custom
//! `code` to an async rejection.

use crate::store::memory::WrongType;
use crate::store::redis::StoreError;

pub const STORE_TIMEOUT: &str = "ERR_TOLLGATE_STORE_TIMEOUT";
pub const STORE_UNAVAILABLE: &str = "ERR_TOLLGATE_STORE_UNAVAILABLE";
pub const STORE_CLOSED: &str = "ERR_TOLLGATE_STORE_CLOSED";
pub const STORE_ERROR: &str = "ERR_TOLLGATE_STORE_ERROR";
pub const STORE_AUTH: &str = "ERR_TOLLGATE_STORE_AUTH";
pub const STORE_OOM: &str = "ERR_TOLLGATE_STORE_OOM";
pub const STORE_EVICTION: &str = "ERR_TOLLGATE_STORE_EVICTION";
pub const INVALID_ARG: &str = "ERR_TOLLGATE_INVALID_ARG";

pub fn coded(code: &str, message: impl std::fmt::Display) -> napi::Error {
  napi::Error::from_reason(format!("{code}: {message}"))
}

impl From<StoreError> for napi::Error {
  fn from(e: StoreError) -> Self {
    match e {
      StoreError::Timeout(m) => coded(STORE_TIMEOUT, m),
      StoreError::Unavailable(m) => coded(STORE_UNAVAILABLE, m),
      StoreError::Command(m) => coded(STORE_ERROR, m),
      StoreError::Auth(m) => coded(STORE_AUTH, m),
      StoreError::OutOfMemory(m) => coded(STORE_OOM, m),
      StoreError::Eviction(m) => coded(STORE_EVICTION, m),
      StoreError::Closed => coded(STORE_CLOSED, "the store was closed"),
    }
  }
}

impl From<WrongType> for napi::Error {
  fn from(_: WrongType) -> Self {
    coded(
      STORE_ERROR,
      "WRONGTYPE the key holds another kind of value (do two classes share a prefix?)",
    )
  }
}

/// Milliseconds from JavaScript (already validated there) as the engines take them.
pub fn ms(v: f64) -> u64 {
  if v.is_finite() && v > 0.0 {
    v as u64
  } else {
    0
  }
}
