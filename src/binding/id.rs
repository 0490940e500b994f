//! Reading ids from JavaScript as key parts, without allocating on the hot path.
//!
//! Every user-supplied part of a key (id, bucket, session id, scope, model, provider) crosses
//! napi as an [`Id`]: already encoded as `store::key` defines, so lone surrogates stay distinct
//! and no id can name a Cluster hash tag. napi-rs reads a `String` argument with two N-API
//! calls (one to measure, one to copy) and a heap allocation; a limiter call spends most of its
//! time there. [`Id`] copies the string once into an inline buffer as UTF-8 and, only when
//! that copy holds `%`, `{`, `}` or U+FFFD (what a lone surrogate turns into), or does not
//! fit, reads it again — as UTF-16 for the encoder. [`with_key`] joins a prefix and an id on
//! the stack.

use napi::bindgen_prelude::{FromNapiValue, TypeName, ValidateNapiValue, ValueType};
use napi::sys;

use crate::store::key::{self, Part};

const INLINE: usize = 192;

/// A string argument as UTF-8, held inline when short (lone surrogates read as U+FFFD: for
/// text such as what tokens are counted in, never for keys).
pub struct Text {
  inline: [u8; INLINE],
  len: usize,
  heap: Option<String>,
}

/// A string argument encoded as a key part (`store::key`), held inline when short.
pub struct Id(Text);

impl Text {
  pub fn as_str(&self) -> &str {
    match &self.heap {
      Some(s) => s,
      // SAFETY: N-API wrote valid UTF-8 (whole characters only) into `inline[..len]`.
      None => unsafe { std::str::from_utf8_unchecked(&self.inline[..self.len]) },
    }
  }

  /// Reads `value`; with `as_key`, encoded as a key part.
  unsafe fn read(env: sys::napi_env, value: sys::napi_value, as_key: bool) -> napi::Result<Self> {
    let mut t = Text {
      inline: [0; INLINE],
      len: 0,
      heap: None,
    };
    let mut written = 0;
    let status = unsafe {
      sys::napi_get_value_string_utf8(
        env,
        value,
        t.inline.as_mut_ptr().cast(),
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
    let whole = written + 5 <= INLINE;
    if as_key {
      if whole && !suspect(&t.inline[..written]) {
        t.len = written;
        return Ok(t);
      }
      t.heap = Some(unsafe { read_utf16(env, value) }?.as_str().to_owned());
    } else if whole {
      t.len = written;
    } else {
      t.heap = Some(unsafe { String::from_napi_value(env, value) }?);
    }
    Ok(t)
  }
}

impl Id {
  /// The encoded part.
  pub fn as_str(&self) -> &str {
    self.0.as_str()
  }
}

macro_rules! string_argument {
  ($t:ty, $as_key:expr, $wrap:expr) => {
    impl TypeName for $t {
      fn type_name() -> &'static str {
        "String"
      }

      fn value_type() -> ValueType {
        ValueType::String
      }
    }

    impl ValidateNapiValue for $t {}

    impl FromNapiValue for $t {
      unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> napi::Result<Self> {
        unsafe { Text::read(env, value, $as_key) }.map($wrap)
      }
    }
  };
}

string_argument!(Text, false, |t| t);
string_argument!(Id, true, Id);

/// UTF-8 that the encoder would change, or that may hide a lone surrogate (U+FFFD).
fn suspect(utf8: &[u8]) -> bool {
  utf8.iter().any(|&b| matches!(b, b'%' | b'{' | b'}'))
    || utf8.windows(3).any(|w| w == [0xEF, 0xBF, 0xBD])
}

/// Reads a JavaScript string as UTF-16 code units and encodes it.
unsafe fn read_utf16(env: sys::napi_env, value: sys::napi_value) -> napi::Result<Part> {
  let mut len = 0;
  let status =
    unsafe { sys::napi_get_value_string_utf16(env, value, std::ptr::null_mut(), 0, &mut len) };
  if status != sys::Status::napi_ok {
    return Err(napi::Error::new(
      napi::Status::StringExpected,
      "expected a string",
    ));
  }
  let mut units = vec![0u16; len + 1];
  let mut written = 0;
  let status = unsafe {
    sys::napi_get_value_string_utf16(env, value, units.as_mut_ptr(), len + 1, &mut written)
  };
  if status != sys::Status::napi_ok {
    return Err(napi::Error::new(
      napi::Status::StringExpected,
      "expected a string",
    ));
  }
  Ok(Part::from_utf16(&units[..written]))
}

/// The store key of `parts` (read as [`Id`]s) under `prefix`: `store::key::join`.
pub fn key_of(prefix: &str, parts: &[&Id]) -> String {
  let refs: Vec<&str> = parts.iter().map(|p| p.as_str()).collect();
  key::join(prefix, &refs)
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
