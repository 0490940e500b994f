//! Token counting for OpenAI's encodings, exact (`o200k_base`, `cl100k_base`), with GitHub's
//! `bpe-openai`: linear in the worst case (100,000 repeated characters take about a
//! millisecond, where classic BPE merging is quadratic) and built lazily, once per process
//! and encoding, from compressed tables compiled into the crate ([`tables`]).
//!
//! Two things make it faster than bpe-openai's own `count`, with the same answers: most pieces
//! are cut by an ASCII scanner ([`pieces`]) instead of the split regex, and each thread keeps
//! the counts of the short pieces it has seen (words recur: in English text nearly every piece
//! is one seen before).
//!
//! ```
//! use tollgate::engine::tokens::{count, Encoding};
//! assert_eq!(count(Encoding::O200k, "Hello, world!"), 4);
//! ```

mod pieces;
mod tables;

use std::cell::RefCell;

use hashbrown::HashMap;

/// An OpenAI encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
  O200k,
  Cl100k,
}

impl Encoding {
  pub fn name(self) -> &'static str {
    match self {
      Encoding::O200k => "o200k_base",
      Encoding::Cl100k => "cl100k_base",
    }
  }

  /// The encoding by name (`o200k_base`, `cl100k_base`).
  pub fn from_name(name: &str) -> Option<Encoding> {
    match name {
      "o200k_base" => Some(Encoding::O200k),
      "cl100k_base" => Some(Encoding::Cl100k),
      _ => None,
    }
  }

  /// The encoding of an OpenAI model, by the model name's family (dated and fine-tuned
  /// variants included: `gpt-4o-2024-08-06`, `ft:gpt-4o-mini:org::id`).
  pub fn for_model(model: &str) -> Option<Encoding> {
    let m = model.strip_prefix("ft:").unwrap_or(model);
    let m = m.strip_prefix("openai/").unwrap_or(m);
    const O200K: [&str; 9] = [
      "gpt-4o",
      "gpt-4.1",
      "gpt-4.5",
      "gpt-5",
      "o1",
      "o3",
      "o4",
      "chatgpt-4o",
      "gpt-oss",
    ];
    const CL100K: [&str; 5] = [
      "gpt-4",
      "gpt-3.5",
      "text-embedding-3",
      "text-embedding-ada-002",
      "davinci-002",
    ];
    if O200K.iter().any(|p| family(m, p)) {
      Some(Encoding::O200k)
    } else if CL100K.iter().any(|p| family(m, p)) {
      Some(Encoding::Cl100k)
    } else {
      None
    }
  }

  fn tokenizer(self) -> &'static bpe_openai::Tokenizer {
    tables::get(self)
  }
}

/// `model` is `prefix` or `prefix` followed by `-`, `.`, `:` or `_` (so `o1` matches `o1-mini`
/// but not `o10`, and `gpt-4` does not match `gpt-4o`).
fn family(model: &str, prefix: &str) -> bool {
  match model.strip_prefix(prefix) {
    Some("") => true,
    Some(rest) => {
      rest.starts_with(['-', '.', ':', '_']) && !(prefix == "gpt-4" && rest.starts_with(".5"))
    }
    None => false,
  }
}

/// Tokens in `text`.
pub fn count(encoding: Encoding, text: &str) -> usize {
  let tokenizer = encoding.tokenizer();
  PIECE_COUNTS.with_borrow_mut(|caches| {
    let cache = &mut caches[encoding as usize];
    let bytes = text.as_bytes();
    let mut total = 0;
    let mut at = 0;
    while at < bytes.len() {
      let len = match pieces::ascii_piece(encoding, &bytes[at..]) {
        Some(len) => len,
        None => match tokenizer.split(&text[at..]).next() {
          Some(piece) if !piece.is_empty() => piece.len(),
          // The pattern matches at every position; should it not, count as bpe-openai does.
          _ => return total + tokenizer.count(&text[at..]),
        },
      };
      total += cache.count(&tokenizer.bpe, &bytes[at..at + len]);
      at += len;
    }
    total
  })
}

/// Pieces up to this many bytes have their counts kept.
const CACHED_PIECE_BYTES: usize = 32;
/// Counts kept per thread and encoding before the cache starts over (a few MB at most).
const CACHED_PIECES: usize = 1 << 16;

thread_local! {
  static PIECE_COUNTS: RefCell<[PieceCounts; 2]> = RefCell::default();
}

/// Lookups per check of the hit rate.
const PROBE_WINDOW: u32 = 1024;
/// A window with more misses than this is text the cache does not help (random identifiers,
/// base64, a language it has not seen yet)...
const COLD_MISSES: u32 = PROBE_WINDOW * 15 / 16;
/// ...so this many pieces are counted without it before it is tried again: a miss costs a
/// lookup, an allocation and an insert, about half of what counting a short piece costs.
const COLD_SKIP: u32 = 16 * PROBE_WINDOW;

/// The token counts of pieces seen before, by their bytes.
#[derive(Default)]
struct PieceCounts {
  counts: HashMap<Box<[u8]>, u32>,
  probes: u32,
  misses: u32,
  skip: u32,
}

impl PieceCounts {
  fn count(
    &mut self,
    bpe: &bpe_openai::byte_pair_encoding::BytePairEncoding,
    piece: &[u8],
  ) -> usize {
    if piece.len() > CACHED_PIECE_BYTES {
      return bpe.count(piece);
    }
    if self.skip > 0 {
      self.skip -= 1;
      return bpe.count(piece);
    }
    self.probes += 1;
    if self.probes == PROBE_WINDOW {
      if self.misses > COLD_MISSES {
        self.skip = COLD_SKIP;
      }
      self.probes = 0;
      self.misses = 0;
    }
    if let Some(&n) = self.counts.get(piece) {
      return n as usize;
    }
    self.misses += 1;
    let n = bpe.count(piece);
    if self.counts.len() >= CACHED_PIECES {
      self.counts.clear();
    }
    self.counts.insert(piece.into(), n as u32);
    n
  }
}

/// Chat formatting overhead, per OpenAI's rules for current chat models: every message costs
/// 3 tokens besides its text, a `name` 1 more, and every reply is primed with 3.
pub const TOKENS_PER_MESSAGE: usize = 3;
pub const TOKENS_PER_NAME: usize = 1;
pub const REPLY_PRIMING: usize = 3;

/// One chat message as counted: its role, its text (all text parts joined by the caller) and
/// its name if any.
pub struct Message<'a> {
  pub role: &'a str,
  pub texts: Vec<&'a str>,
  pub name: Option<&'a str>,
}

/// Tokens a list of chat messages costs as a prompt.
pub fn count_messages(encoding: Encoding, messages: &[Message<'_>]) -> usize {
  let t = |text: &str| count(encoding, text);
  let body: usize = messages
    .iter()
    .map(|m| {
      TOKENS_PER_MESSAGE
        + t(m.role)
        + m.texts.iter().map(|x| t(x)).sum::<usize>()
        + m.name.map_or(0, |n| TOKENS_PER_NAME + t(n))
    })
    .sum();
  body + REPLY_PRIMING
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn models_map_to_their_encoding() {
    for (m, e) in [
      ("gpt-4o", Some(Encoding::O200k)),
      ("gpt-4o-mini-2024-07-18", Some(Encoding::O200k)),
      ("ft:gpt-4o-mini:acme::abc", Some(Encoding::O200k)),
      ("o1", Some(Encoding::O200k)),
      ("o3-mini", Some(Encoding::O200k)),
      ("gpt-4.1-nano", Some(Encoding::O200k)),
      ("gpt-5", Some(Encoding::O200k)),
      ("gpt-4", Some(Encoding::Cl100k)),
      ("gpt-4-turbo", Some(Encoding::Cl100k)),
      ("gpt-3.5-turbo", Some(Encoding::Cl100k)),
      ("text-embedding-3-small", Some(Encoding::Cl100k)),
      ("o10", None),
      ("claude-3-5-sonnet-latest", None),
      ("", None),
    ] {
      assert_eq!(Encoding::for_model(m), e, "{m}");
    }
  }

  #[test]
  fn long_runs_count_in_linear_time() {
    let long = "a".repeat(100_000);
    let t = std::time::Instant::now();
    assert!(count(Encoding::O200k, &long) > 0);
    assert!(count(Encoding::Cl100k, &"_".repeat(1_000_000)) > 0);
    // Generous for a debug build; a quadratic merge takes minutes on these inputs.
    assert!(t.elapsed().as_secs() < 20, "{:?}", t.elapsed());
  }

  #[test]
  fn counts_equal_bpe_openai_and_survive_the_cache_starting_over() {
    // Distinct words, more than the cache keeps, twice over: the first pass fills the cache and
    // starts it over, the second counts from it.
    let word = |mut i: usize| {
      let mut w = String::from(if i % 7 == 0 { " " } else { " The" });
      loop {
        w.push((b'a' + (i % 26) as u8) as char);
        i /= 26;
        if i == 0 {
          break w;
        }
      }
    };
    let text: String = (0..CACHED_PIECES + 5_000).map(word).collect();
    for (e, reference) in [
      (Encoding::O200k, bpe_openai::o200k_base()),
      (Encoding::Cl100k, bpe_openai::cl100k_base()),
    ] {
      let expected = reference.count(text.as_str());
      assert_eq!(count(e, &text), expected);
      assert_eq!(count(e, &text), expected);
      let mixed = format!("{text} naïve 你好 \u{3000}x {text}");
      assert_eq!(count(e, &mixed), reference.count(mixed.as_str()));
    }
  }

  #[test]
  fn the_cache_stands_aside_for_text_it_does_not_help() {
    let bpe = &Encoding::O200k.tokenizer().bpe;
    let mut cache = PieceCounts::default();
    // Recurring words: every window is mostly hits, the cache stays on.
    for i in 0..4 * PROBE_WINDOW {
      cache.count(bpe, format!(" w{}", i % 50).as_bytes());
    }
    assert_eq!((cache.skip, cache.counts.len()), (0, 50));
    // A window of pieces never seen before: it stands aside for COLD_SKIP pieces...
    for i in 0..PROBE_WINDOW {
      cache.count(bpe, format!(" x{i}").as_bytes());
    }
    assert_eq!(cache.skip, COLD_SKIP);
    let kept = cache.counts.len();
    for i in 0..COLD_SKIP {
      assert_eq!(
        cache.count(bpe, format!(" y{i}").as_bytes()),
        bpe.count(format!(" y{i}").as_bytes())
      );
    }
    assert_eq!((cache.skip, cache.counts.len()), (0, kept));
    // ...then is tried again.
    cache.count(bpe, b" again");
    assert_eq!(cache.counts.len(), kept + 1);
  }

  #[test]
  fn chat_overhead() {
    let msgs = [
      Message {
        role: "system",
        texts: vec!["You are helpful."],
        name: None,
      },
      Message {
        role: "user",
        texts: vec!["Hi"],
        name: Some("ann"),
      },
    ];
    let e = Encoding::O200k;
    let expected = 3
      + count(e, "system")
      + count(e, "You are helpful.")
      + 3
      + count(e, "user")
      + count(e, "Hi")
      + 1
      + count(e, "ann")
      + 3;
    assert_eq!(count_messages(e, &msgs), expected);
  }
}
