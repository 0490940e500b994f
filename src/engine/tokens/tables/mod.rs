//! The encodings' tokenizers, built on first use (once per process and encoding) from tables
//! shipped zstd-compressed in the addon: 4.3 MB for both encodings where bpe-openai compiles in
//! 47 MB. build.rs writes them from bpe-openai's own tables ([`format`] says what is kept); here
//! they are decompressed and handed to `bpe`'s `BytePairEncoding` through its serde form
//! ([`fields`]), then paired with the encoding's split pattern: the first count takes 60–90 ms for
//! o200k_base, 25–35 ms for cl100k_base (2-core machine). Counting gives exactly bpe-openai's
//! answers (tested below on every token of both encodings, and against OpenAI's tiktoken in
//! `__test__/tokens.test.ts`).

mod fields;
mod format;

use std::sync::LazyLock;

use bpe_openai::byte_pair_encoding::BytePairEncoding;
use bpe_openai::Tokenizer;
use serde::Deserialize;

use super::Encoding;

static O200K: LazyLock<Tokenizer> = LazyLock::new(|| {
  let tables = include_bytes!(concat!(env!("OUT_DIR"), "/o200k_base.tables"));
  // OpenAI's o200k_base split pattern, as bpe-openai writes it: the negative lookahead
  // `\s+(?!\S)` becomes `\s+$` or `\s+\s` whose last character is given back.
  let words = [
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"\p{N}{1,3}",
    r" ?[^\s\p{L}\p{N}]+[\r\n/]*",
    r"\s*[\r\n]+",
    r"\s+$",
  ]
  .join("|");
  tokenizer(tables, &words)
});

static CL100K: LazyLock<Tokenizer> = LazyLock::new(|| {
  let tables = include_bytes!(concat!(env!("OUT_DIR"), "/cl100k_base.tables"));
  let words = [
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)",
    r"[^\r\n\p{L}\p{N}]?\p{L}+",
    r"\p{N}{1,3}",
    r" ?[^\s\p{L}\p{N}]+[\r\n]*",
    r"\s*[\r\n]+",
    r"\s+$",
  ]
  .join("|");
  tokenizer(tables, &words)
});

/// The tokenizer of an encoding.
pub(super) fn get(encoding: Encoding) -> &'static Tokenizer {
  match encoding {
    Encoding::O200k => &O200K,
    Encoding::Cl100k => &CL100K,
  }
}

fn tokenizer(compressed: &[u8], words: &str) -> Tokenizer {
  let bpe = tables(compressed);
  let patterns = [(words, false), (r"\s+\s", true), (r"\s+", false)];
  Tokenizer::new_lookahead(bpe, &patterns, false).expect("the split pattern compiles")
}

/// The byte-pair tables from their compressed compact form.
fn tables(compressed: &[u8]) -> BytePairEncoding {
  let compact = zstd::decode_all(compressed).expect("the embedded tables decompress");
  let parts = format::Parts::from_compact(&compact);
  BytePairEncoding::deserialize(fields::PartsDeserializer(parts))
    .expect("the parts are bpe's serde form")
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn counts_and_splits_equal_bpe_openai() {
    // Every token's own bytes, and a text of all tokens back to back, in both encodings.
    for (e, theirs) in [
      (Encoding::O200k, bpe_openai::o200k_base()),
      (Encoding::Cl100k, bpe_openai::cl100k_base()),
    ] {
      let ours = get(e);
      let n = theirs.bpe.num_tokens() as u32;
      let mut all = Vec::new();
      for id in 0..n {
        let bytes = theirs.bpe.token_bytes(id);
        assert_eq!(ours.bpe.count(bytes), 1, "{e:?} token {id}");
        all.extend_from_slice(bytes);
      }
      for chunk in all.chunks(4096) {
        assert_eq!(ours.bpe.count(chunk), theirs.bpe.count(chunk), "{e:?}");
      }
      let text = String::from_utf8_lossy(&all);
      let ours_split: Vec<&str> = ours.split(&text).collect();
      let theirs_split: Vec<&str> = theirs.split(&text).collect();
      assert_eq!(ours_split, theirs_split, "{e:?}");
      assert_eq!(
        ours.count(text.as_ref()),
        theirs.count(text.as_ref()),
        "{e:?}"
      );
    }
  }
}
