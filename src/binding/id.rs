//! Reading ids and keys from JavaScript without allocating on the hot path.
//!
//! napi-rs reads a `String` argument with two N-API calls (one to measure, one to copy) and a
//! heap allocation; a limiter call spends most of its time there. [`Id`] copies the string
//! once into an inline buffer and falls back to the two-call path only for long ids, and
//! [`with_key`] joins a prefix and an id on the stack.

use napi::bindgen_prelude::{FromNapiValue, TypeName, ValidateNapiValue, ValueType};
use napi::sys;

const INLINE: usize = 192;

/// A string argument, held inline when short.
pub struct Id {
  inline: [u8; INLINE],
  len: usize,
  heap: Option<String>,
}

impl Id {
  pub fn as_str(&self) -> &str {
    match &self.heap {
      Some(s) => s,
      // SAFETY: N-API wrote valid UTF-8 (whole characters only) into `inline[..len]`.
      None => unsafe { std::str::from_utf8_unchecked(&self.inline[..self.len]) },
    }
  }
}

impl TypeName for Id {
  fn type_name() -> &'static str {
    "String"
  }

  fn value_type() -> ValueType {
    ValueType::String
  }
}

impl ValidateNapiValue for Id {}

impl FromNapiValue for Id {
  unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> napi::Result<Self> {
    let mut id = Id {
      inline: [0; INLINE],
      len: 0,
      heap: None,
    };
    let mut written = 0;
    let status = unsafe {
      sys::napi_get_value_string_utf8(
        env,
        value,
        id.inline.as_mut_ptr().cast(),
        INLINE,
        &mut written,
      )
    };
    if status != sys::Status::napi_ok {
      return Err(napi::Error::new(
        napi::Status::StringExpected,
        "expected a string",
      ));
    }
    // N-API stops before a character that does not fit (up to 4 bytes) and keeps one byte for
    // the terminating NUL: anything shorter than that margin is the whole string.
    if written + 5 <= INLINE {
      id.len = written;
      return Ok(id);
    }
    id.heap = Some(unsafe { String::from_napi_value(env, value) }?);
    Ok(id)
  }
}

/// Calls `f` with `prefix + id`, built on the stack when it fits.
pub fn with_key<R>(prefix: &str, id: &str, f: impl FnOnce(&str) -> R) -> R {
  const STACK: usize = 256;
  let total = prefix.len() + id.len();
  if total > STACK {
    return f(&format!("{prefix}{id}"));
  }
  let mut buf = [0u8; STACK];
  buf[..prefix.len()].copy_from_slice(prefix.as_bytes());
  buf[prefix.len()..total].copy_from_slice(id.as_bytes());
  // SAFETY: the concatenation of two UTF-8 strings is UTF-8.
  f(unsafe { std::str::from_utf8_unchecked(&buf[..total]) })
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn keys_join_on_the_stack_and_on_the_heap() {
    assert_eq!(with_key("p:", "id", str::to_owned), "p:id");
    let long = "é".repeat(200);
    assert_eq!(with_key("p:", &long, |k| k.len()), 2 + 400);
  }
}
