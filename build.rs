//! napi's build setup, and the token tables: bpe-openai's prebuilt tables for o200k_base and
//! cl100k_base, kept to what counting reads and compressed with zstd
//! (src/engine/tokens/tables/format.rs). The addon embeds these (4.3 MB) instead of bpe-openai's
//! (47 MB) and rebuilds the tables on first use.

use std::path::PathBuf;

use bpe_openai::byte_pair_encoding::BytePairEncoding;

#[path = "src/engine/tokens/tables/format.rs"]
#[allow(dead_code)]
mod format;

fn parts(bpe: &BytePairEncoding) -> format::Parts {
  let bytes = rmp_serde::to_vec(bpe).expect("the tables serialize");
  rmp_serde::from_slice(&bytes).expect("the tables read back as Parts")
}

fn main() {
  napi_build::setup();
  let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
  // A valid automaton of one token, for the ones counting never reads.
  let stub = parts(&BytePairEncoding::from_dictionary([vec![0u8]], None)).overlapping_searcher;
  for (name, tokenizer) in [
    ("o200k_base", bpe_openai::o200k_base()),
    ("cl100k_base", bpe_openai::cl100k_base()),
  ] {
    let full = parts(&tokenizer.bpe);
    let compact = full.to_compact(&stub);
    // What the addon reads back is exactly what counting reads.
    let back = format::Parts::from_compact(&compact);
    assert_eq!(back.token_starts, full.token_starts, "{name}");
    assert_eq!(back.split_table, full.split_table, "{name}");
    assert_eq!(back.next_prefix_match, full.next_prefix_match, "{name}");
    assert_eq!(back.longest_searcher, full.longest_searcher, "{name}");
    assert_eq!(back.hash_factor, full.hash_factor, "{name}");
    let mut pairs = back.pair_lookup.clone();
    let mut expected = full.pair_lookup.clone();
    pairs.sort_unstable();
    expected.sort_unstable();
    assert_eq!(
      pairs, expected,
      "{name}: the pair lookup is the split table's merges"
    );

    let compressed = zstd::bulk::compress(&compact, 19).expect("zstd");
    std::fs::write(out.join(format!("{name}.tables")), compressed).expect("write the tables");
  }
  println!("cargo::rerun-if-changed=build.rs");
  println!("cargo::rerun-if-changed=src/engine/tokens/tables/format.rs");
}
