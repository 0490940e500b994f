//! How user-supplied parts (ids, scopes, providers, models, instance ids) become store keys —
//! one encoding for every class and every store, so two different tuples never share a key.
//!
//! A key is `prefix + part₁ ":" part₂ ":" … partₙ`, where the prefix is the class's (chosen by
//! whoever configures it) and each part is written as itself except for a few characters:
//!
//! | in a part | written |
//! |---|---|
//! | `%` | `%25` |
//! | `{` | `%7B` |
//! | `}` | `%7D` |
//! | `:` in any part but the last | `%3A` |
//! | a lone UTF-16 surrogate (half an emoji) | `%u` + four upper-case hex digits, e.g. `%uD800` |
//!
//! Why this is injective: the escapes start with `%`, which never appears raw, and no escape is
//! a prefix of another, so each part decodes to exactly one string; and every part but the
//! last holds no raw `:`, so the first n−1 raw `:` after the prefix split the parts. Lone
//! surrogates are kept as their code units instead of becoming U+FFFD, so `x\uD800`,
//! `x\uDBFF` and `x\uFFFD` are three keys. A part never holds a raw `{` or `}`, so no id can
//! name a Redis Cluster hash tag: the slot is chosen by the prefix (tollgate's `{…}` where a
//! decision spans several keys) or, without one, by the whole key.
//!
//! Ids without `%`, `{`, `}` and lone surrogates — nearly all ids — are written unchanged, so
//! the keys of a single-part class (`tollgate:ratelimit:<id>`) keep their names.
//!
//! ```
//! use tollgate::store::key::{join, Part};
//! assert_eq!(join("tollgate:ratelimit:", &["user:42"]), "tollgate:ratelimit:user:42");
//! // provider "a:b" + scope "c" and provider "a" + scope "b:c" are two keys
//! assert_eq!(join("p:", &["a:b", "c"]), "p:a%3Ab:c");
//! assert_eq!(join("p:", &["a", "b:c"]), "p:a:b:c");
//! let lone: Vec<u16> = "x".encode_utf16().chain([0xD800]).collect();
//! assert_eq!(Part::from_utf16(&lone).as_str(), "x%uD800");
//! assert_eq!(Part::from_str("{tag}").as_str(), "%7Btag%7D");
//! ```

use std::borrow::Cow;

/// A part already encoded (everything but `:`, which depends on its position).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part(String);

impl Part {
  /// Encodes a well-formed string.
  #[allow(clippy::should_implement_trait)]
  pub fn from_str(s: &str) -> Part {
    Part(escape(s).into_owned())
  }

  /// Encodes UTF-16 code units, keeping lone surrogates as `%uXXXX`.
  pub fn from_utf16(units: &[u16]) -> Part {
    let mut out = String::with_capacity(units.len());
    for c in char::decode_utf16(units.iter().copied()) {
      match c {
        Ok(c) => push_char(&mut out, c),
        Err(e) => {
          out.push_str("%u");
          out.push_str(&format!("{:04X}", e.unpaired_surrogate()));
        }
      }
    }
    Part(out)
  }

  /// Wraps text this module encoded earlier.
  pub fn encoded(s: String) -> Part {
    Part(s)
  }

  pub fn as_str(&self) -> &str {
    &self.0
  }
}

/// True when `s` holds a character this encoding rewrites (`%`, `{`, `}`). A reader of
/// JavaScript strings also treats U+FFFD as suspect: it is how a lone surrogate reads once the
/// string was converted to UTF-8, so the binding reads such a string again as UTF-16.
pub fn needs_escape(s: &str) -> bool {
  s.bytes().any(|b| matches!(b, b'%' | b'{' | b'}'))
}

/// `s` with `%`, `{` and `}` escaped (borrowed when there is nothing to escape).
pub fn escape(s: &str) -> Cow<'_, str> {
  if !needs_escape(s) {
    return Cow::Borrowed(s);
  }
  let mut out = String::with_capacity(s.len() + 8);
  for c in s.chars() {
    push_char(&mut out, c);
  }
  Cow::Owned(out)
}

fn push_char(out: &mut String, c: char) {
  match c {
    '%' => out.push_str("%25"),
    '{' => out.push_str("%7B"),
    '}' => out.push_str("%7D"),
    c => out.push(c),
  }
}

/// The key of `parts` (each already encoded, as [`Part::as_str`] gives) under `prefix`.
pub fn join(prefix: &str, parts: &[&str]) -> String {
  let mut key =
    String::with_capacity(prefix.len() + parts.iter().map(|p| p.len() + 3).sum::<usize>());
  key.push_str(prefix);
  push_parts(&mut key, parts);
  key
}

/// Appends `parts` as [`join`] does.
pub fn push_parts(key: &mut String, parts: &[&str]) {
  let last = parts.len().saturating_sub(1);
  for (i, p) in parts.iter().enumerate() {
    if i < last {
      for c in p.chars() {
        if c == ':' {
          key.push_str("%3A");
        } else {
          key.push(c);
        }
      }
      key.push(':');
    } else {
      key.push_str(p);
    }
  }
}

/// Decodes one part (the inverse of [`Part::from_utf16`] plus the `:` escape), as UTF-16 code
/// units. `None` when `s` is not an encoding this module writes.
pub fn decode(s: &str) -> Option<Vec<u16>> {
  let mut out = Vec::with_capacity(s.len());
  let mut rest = s;
  while let Some(i) = rest.find('%') {
    out.extend(rest[..i].encode_utf16());
    let esc = &rest[i..];
    let (unit, len): (u16, usize) = match esc.get(..3)? {
      "%25" => (b'%' as u16, 3),
      "%7B" => (b'{' as u16, 3),
      "%7D" => (b'}' as u16, 3),
      "%3A" => (b':' as u16, 3),
      _ if esc.starts_with("%u") => {
        let hex = esc.get(2..6)?;
        if !hex
          .bytes()
          .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
        {
          return None;
        }
        (u16::from_str_radix(hex, 16).ok()?, 6)
      }
      _ => return None,
    };
    out.push(unit);
    rest = &esc[len..];
  }
  out.extend(rest.encode_utf16());
  Some(out)
}

#[cfg(test)]
mod tests {
  use super::*;
  use proptest::prelude::*;

  fn units(s: &str) -> Vec<u16> {
    s.encode_utf16().collect()
  }

  #[test]
  fn plain_ids_keep_their_names() {
    assert_eq!(
      join("tollgate:ratelimit:", &["tenant:acme"]),
      "tollgate:ratelimit:tenant:acme"
    );
    assert_eq!(Part::from_str("é\u{0}x").as_str(), "é\u{0}x");
  }

  #[test]
  fn lone_surrogates_and_the_replacement_character_are_three_keys() {
    let a = Part::from_utf16(&[b'x' as u16, 0xD800]);
    let b = Part::from_utf16(&[b'x' as u16, 0xDBFF]);
    let c = Part::from_utf16(&units("x\u{FFFD}"));
    assert_eq!(a.as_str(), "x%uD800");
    assert_eq!(b.as_str(), "x%uDBFF");
    assert_eq!(c.as_str(), "x\u{FFFD}");
    // A whole pair stays one character.
    assert_eq!(Part::from_utf16(&units("😀")).as_str(), "😀");
  }

  #[test]
  fn no_part_names_a_hash_tag() {
    let k = join("tollgate:ratelimit:", &[Part::from_str("{slot}x").as_str()]);
    assert!(!k.contains('{') && !k.contains('}'));
  }

  fn tuple() -> impl Strategy<Value = Vec<Vec<u16>>> {
    // Code units drawn mostly from the characters that matter: separators, escapes, braces,
    // NUL, surrogates of both halves, U+FFFD.
    let unit = prop_oneof![
      Just(b':' as u16),
      Just(b'%' as u16),
      Just(b'{' as u16),
      Just(b'}' as u16),
      Just(0u16),
      Just(b'u' as u16),
      Just(b'A' as u16),
      Just(0xD800u16),
      Just(0xDBFFu16),
      Just(0xDC00u16),
      Just(0xFFFDu16),
      any::<u16>(),
    ];
    prop::collection::vec(prop::collection::vec(unit, 0..8), 1..4)
  }

  fn key_of(t: &[Vec<u16>]) -> String {
    let parts: Vec<Part> = t.iter().map(|u| Part::from_utf16(u)).collect();
    let refs: Vec<&str> = parts.iter().map(Part::as_str).collect();
    join("p:", &refs)
  }

  proptest! {
    /// Many tuples over a tiny alphabet of separators, escapes and surrogates, so that a
    /// collision, if the encoding allowed one, would be found.
    #[test]
    fn distinct_tuples_of_one_arity_never_share_a_key(
      ts in prop::collection::vec(tuple(), 64),
      arity in 1usize..4,
    ) {
      let ts: Vec<Vec<Vec<u16>>> = ts
        .into_iter()
        .map(|mut t| {
          t.resize(arity, Vec::new());
          t
        })
        .collect();
      let mut seen = std::collections::HashMap::new();
      for t in &ts {
        if let Some(other) = seen.insert(key_of(t), t.clone()) {
          prop_assert_eq!(&other, t);
        }
      }
    }

    #[test]
    fn every_part_decodes_back(t in tuple()) {
      let key = key_of(&t);
      let body = &key[2..];
      let n = t.len();
      let parts: Vec<&str> = body.splitn(n, ':').collect();
      prop_assert_eq!(parts.len(), n);
      for (p, u) in parts.iter().zip(&t) {
        let back = decode(p);
        prop_assert_eq!(back.as_ref(), Some(u));
      }
      let tagged = key.contains('{') || key.contains('}');
      prop_assert!(!tagged, "a brace in {:?}", key);
    }
  }
}
