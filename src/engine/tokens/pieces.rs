//! The pre-tokenizer's fast path: the piece at the start of a text, decided from ASCII bytes
//! alone, exactly as the encoding's split pattern would cut it — or `None` when deciding needs a
//! non-ASCII character, and the pattern (bpe-openai's regex) cuts that piece instead.
//!
//! The patterns, as bpe-openai writes them (leftmost-first, anchored at the piece's start; the
//! lookahead alternative `\s+\s` gives back its last character):
//!
//! ```text
//! o200k_base   [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?
//!            | [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?
//!            | \p{N}{1,3} |  ?[^\s\p{L}\p{N}]+[\r\n/]* | \s*[\r\n]+ | \s+$ | \s+\s | \s+
//! cl100k_base  (?i:'s|'t|'re|'ve|'m|'ll|'d) | [^\r\n\p{L}\p{N}]?\p{L}+ | \p{N}{1,3}
//!            |  ?[^\s\p{L}\p{N}]+[\r\n]* | \s*[\r\n]+ | \s+$ | \s+\s | \s+
//! ```
//!
//! On ASCII, `\p{Lu}` is `A-Z`, `\p{Ll}` is `a-z`, `\p{Lt}`, `\p{Lm}`, `\p{Lo}` and `\p{M}` are
//! empty, `\p{N}` is `0-9` and `\s` is `\t \n \v \f \r` and space. Every run below stops at the
//! first byte outside its class; when that byte is not ASCII, it could belong to the class (a
//! letter, a digit, a space) and the answer is `None`. The unit tests compare this against the
//! regex on hundreds of thousands of random texts mixing ASCII with the non-ASCII characters
//! that sit on the classes' edges.

use super::Encoding;

#[inline]
fn is_space(b: u8) -> bool {
  matches!(b, b'\t'..=b'\r' | b' ')
}

#[inline]
fn is_other(b: u8) -> bool {
  b.is_ascii() && !is_space(b) && !b.is_ascii_alphanumeric()
}

/// The end of the run of bytes in `class` from `i`; `None` if it stops at a non-ASCII byte.
#[inline]
fn run(s: &[u8], mut i: usize, class: impl Fn(u8) -> bool) -> Option<usize> {
  while i < s.len() && class(s[i]) {
    i += 1;
  }
  match s.get(i) {
    Some(b) if !b.is_ascii() => None,
    _ => Some(i),
  }
}

/// The length of a contraction (`'s 't 're 've 'm 'll 'd`, any case) at `s[i..]`: 0 if there is
/// none, `None` if it takes a non-ASCII byte to tell (`(?i)s` also matches `ſ`).
#[inline]
fn contraction(s: &[u8], i: usize) -> Option<usize> {
  if s.get(i) != Some(&b'\'') {
    return Some(0);
  }
  let second = |want: u8| match s.get(i + 2) {
    Some(b) if !b.is_ascii() => None,
    Some(b) if b | 0x20 == want => Some(3),
    _ => Some(0),
  };
  match s.get(i + 1) {
    None => Some(0),
    Some(b) if !b.is_ascii() => None,
    Some(b) => match b | 0x20 {
      b's' | b't' | b'm' | b'd' => Some(2),
      b'r' | b'v' => second(b'e'),
      b'l' => second(b'l'),
      _ => Some(0),
    },
  }
}

/// The length of the piece `s` starts with, when ASCII bytes decide it; never 0.
pub fn ascii_piece(encoding: Encoding, s: &[u8]) -> Option<usize> {
  let b0 = *s.first()?;
  if !b0.is_ascii() {
    return None;
  }
  if encoding == Encoding::Cl100k && b0 == b'\'' {
    match contraction(s, 0)? {
      0 => {}
      n => return Some(n),
    }
  }
  // Letters, after at most one character that is not \r, \n, a letter or a digit.
  let letters = if b0.is_ascii_alphabetic() {
    Some(0)
  } else if b0 != b'\r' && b0 != b'\n' && !b0.is_ascii_digit() {
    match s.get(1) {
      Some(b) if !b.is_ascii() => return None,
      Some(b) if b.is_ascii_alphabetic() => Some(1),
      _ => None,
    }
  } else {
    None
  };
  if let Some(start) = letters {
    return match encoding {
      Encoding::O200k => {
        // Upper case then lower case (one of the two runs may be empty), then a contraction.
        let upper = run(s, start, |b| b.is_ascii_uppercase())?;
        let end = run(s, upper, |b| b.is_ascii_lowercase())?;
        Some(end + contraction(s, end)?)
      }
      Encoding::Cl100k => run(s, start, |b| b.is_ascii_alphabetic()),
    };
  }
  if b0.is_ascii_digit() {
    let end = (1..3.min(s.len()))
      .find(|&i| !s[i].is_ascii_digit())
      .unwrap_or(3.min(s.len()));
    return match s.get(end) {
      Some(b) if end < 3 && !b.is_ascii() => None,
      _ => Some(end),
    };
  }
  // ` ?[^\s\p{L}\p{N}]+` and the line ends (o200k_base: and slashes) after it.
  let other = usize::from(b0 == b' ');
  match s.get(other) {
    Some(b) if !b.is_ascii() => return None,
    Some(&b) if is_other(b) => {
      let end = run(s, other, is_other)?;
      return match encoding {
        Encoding::O200k => run(s, end, |b| matches!(b, b'\r' | b'\n' | b'/')),
        Encoding::Cl100k => run(s, end, |b| matches!(b, b'\r' | b'\n')),
      };
    }
    _ => {}
  }
  // Spaces: through the last line end in the run; else all of a run that ends the text; else
  // all but the last space (which starts the next piece); else the one space.
  let spaces = run(s, 0, is_space)?;
  Some(
    match s[..spaces].iter().rposition(|&b| b == b'\r' || b == b'\n') {
      Some(last) => last + 1,
      None if spaces == s.len() || spaces == 1 => spaces,
      None => spaces - 1,
    },
  )
}

#[cfg(test)]
mod tests {
  use super::*;

  /// The pieces of `text`: the fast path where it decides, the regex where it does not.
  fn split(encoding: Encoding, text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < text.len() {
      let len = ascii_piece(encoding, &text.as_bytes()[at..]).unwrap_or_else(|| {
        encoding
          .tokenizer()
          .split(&text[at..])
          .next()
          .unwrap()
          .len()
      });
      assert!(len > 0, "{text:?} at {at}");
      out.push(&text[at..at + len]);
      at += len;
    }
    out
  }

  fn same_as_the_pattern(text: &str) {
    for e in [Encoding::O200k, Encoding::Cl100k] {
      let regex: Vec<&str> = e.tokenizer().split(text).collect();
      assert_eq!(split(e, text), regex, "{} on {text:?}", e.name());
    }
  }

  #[test]
  fn cuts_like_the_pattern_on_random_texts() {
    // ASCII of every class, and the non-ASCII characters on the classes' edges: a letter,
    // CJK, ſ (which (?i)s matches), a dash, no-break and ideographic spaces, a superscript
    // digit, a title-case letter, a modifier letter, a combining mark, line and paragraph
    // separators, NEL.
    let alphabet: Vec<char> = "aAzZbQsStTrReEvVlLmMdD0123456789 '\"\t\n\r\x0b\x0c\x00\x1f\x7f!?/.,;:-_()[]{}<>@#$%^&*+=~`|\\é你ſ—\u{a0}\u{3000}²ǅʰ\u{301}\u{2028}\u{2029}\u{85}"
      .chars()
      .collect();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      x as usize
    };
    for _ in 0..60_000 {
      let len = next() % 24;
      let text: String = (0..len)
        .map(|_| {
          let k = next();
          // Mostly the first, common ASCII characters, so that runs form.
          if k % 3 == 0 {
            alphabet[(k >> 8) % 24]
          } else {
            alphabet[(k >> 8) % alphabet.len()]
          }
        })
        .collect();
      same_as_the_pattern(&text);
    }
  }

  #[test]
  fn cuts_like_the_pattern_on_prose_and_code() {
    for text in [
      "Summarise this ticket for the on-call engineer.",
      "I'm sure you'll say it's what they'd've DONE'S, isn't it?  Yes.\r\n\r\n  Next",
      "fn main() {\n    println!(\"{}\", 42);\n}\n\n// a/b/c https://example.com/x?y=1\n",
      "HTTPServer camelCase snake_case SCREAMING_CASE 12345678 3.14159 -7 $100.00",
      "tabs\tand\x0bvertical\x0cfeeds   \t \n trailing spaces   ",
      "The quick brown fox — 你好，世界 — jumps; naïve café ſtate 'ſ",
    ] {
      same_as_the_pattern(text);
    }
  }
}
