//! Keys of `ResponseCache` (and `SemanticCache`'s exact tier): SHA-256 of the canonical JSON of
//! the request body `{ model, messages, …parameters }`.
//!
//! The canonical text is written by lib/canonical.js, which walks the JavaScript value itself
//! (iteratively, so nesting depth is bounded by memory, not by a stack): RFC 8785 (JCS) —
//! object properties sorted by UTF-16 code units, numbers printed the way JavaScript prints
//! them, no whitespace — with two choices JCS leaves open: a lone surrogate is written as its
//! `\uXXXX` escape (so `"\ud800"` and `"\udbff"` stay two strings), and values JSON cannot
//! carry faithfully (`NaN`, `Infinity`, `undefined` in an array, functions, symbols, `BigInt`,
//! `Map`, `Set`, cycles) are refused instead of becoming `null`. Requests JCS can write give
//! the same text, so keys are the same as with an RFC 8785 library.
//!
//! ```
//! use tollgate::engine::cache_key::digest;
//! let d = digest(r#"{"messages":[{"content":"Hi","role":"user"}],"model":"gpt-4o"}"#);
//! assert_eq!(d.len(), 64);
//! ```

use sha2::{Digest, Sha256};

/// Lower-case hex SHA-256 (64 characters) of canonical request text.
pub fn digest(canonical: &str) -> String {
  hex::encode(Sha256::digest(canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn sha256_of_the_canonical_text() {
    // tekimax's first test payload with its properties sorted.
    let d = digest(r#"{"messages":[{"content":"Hello","role":"user"}],"model":"gpt-4o"}"#);
    assert_eq!(
      d,
      "89457de9d9cf8c3b993c0047b26f5f902c876d8c73c54cba68a67ddf0d0a5ae9"
    );
    assert_ne!(
      d,
      digest(r#"{"messages":[{"content":"Hello","role":"user"}],"model":"gpt-4o-mini"}"#)
    );
  }
}
