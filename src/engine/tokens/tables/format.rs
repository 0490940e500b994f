//! The compact form of an encoding's byte-pair tables, shared by build.rs (which writes it from
//! bpe-openai's prebuilt tables) and the addon (which reads it back on first use).
//!
//! `bpe`'s `BytePairEncoding` is built from the serde form below (its fields, in order). Counting
//! reads only some of them: the token lengths, the leftmost-longest automaton, the next-prefix
//! links, the split table and the pair lookup (derived from the split table). The compact form
//! keeps those and leaves out the rest — the token bytes and their hash index, and the two
//! overlapping automata (used by encoding, never by counting), which are given a one-token
//! automaton so the structure stays valid. That takes o200k_base from 32 MB to 11 MB before
//! compression (2.9 MB with zstd), and the build checks that reading gives back exactly what was
//! written.
//!
//! Layout (little-endian): `n: u32`, `n` token lengths (`u8`), the split table's first and second
//! halves (`n` × `u32` each), the next-prefix links (`n` × `u32`), `hash_factor: u64`, then two
//! length-prefixed automata (the leftmost-longest one, the one-token stub), each stored as byte
//! planes of 12-byte records (the automaton's states), which compress a sixth smaller.

use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// `BytePairEncoding`'s serde form, field for field (build.rs reads bpe-openai's tables into it;
/// the addon hands it back to `bpe` through `fields.rs`).
#[derive(Deserialize, Default, PartialEq, Debug)]
pub struct Parts {
  pub all_tokens: Vec<u8>,
  pub token_starts: Vec<u32>,
  #[serde(with = "entries")]
  pub bytes_hash_to_token: Vec<(u32, u32)>,
  pub split_table: Vec<(u32, u32)>,
  #[serde(with = "entries")]
  pub pair_lookup: Vec<((u32, u32), u32)>,
  #[serde(with = "bytes")]
  pub longest_searcher: Vec<u8>,
  #[serde(with = "bytes")]
  pub overlapping_searcher: Vec<u8>,
  #[serde(with = "bytes")]
  pub overlapping_searcher_rev: Vec<u8>,
  pub next_prefix_match: Vec<u32>,
  pub hash_factor: u64,
}

impl Parts {
  /// The compact form of the fields counting reads; `stub` is a valid one-token automaton.
  /// (Written by build.rs; the addon only reads.)
  #[allow(dead_code)]
  pub fn to_compact(&self, stub: &[u8]) -> Vec<u8> {
    let n = self.token_starts.len() - 1;
    let mut out = Vec::new();
    out.extend((n as u32).to_le_bytes());
    for w in self.token_starts.windows(2) {
      out.push(u8::try_from(w[1] - w[0]).expect("tokens are at most 255 bytes"));
    }
    out.extend(self.split_table.iter().flat_map(|s| s.0.to_le_bytes()));
    out.extend(self.split_table.iter().flat_map(|s| s.1.to_le_bytes()));
    out.extend(self.next_prefix_match.iter().flat_map(|p| p.to_le_bytes()));
    out.extend(self.hash_factor.to_le_bytes());
    for automaton in [&self.longest_searcher[..], stub] {
      out.extend((automaton.len() as u32).to_le_bytes());
      out.extend(planes(automaton));
    }
    out
  }

  /// The parts back from their compact form: what counting reads, exactly; the rest left empty
  /// (the overlapping automata: the stub).
  pub fn from_compact(data: &[u8]) -> Parts {
    let mut at = 0;
    let mut take = |len: usize| {
      at += len;
      &data[at - len..at]
    };
    let u32s = |b: &[u8]| -> Vec<u32> {
      b.chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect()
    };
    let n = u32::from_le_bytes(take(4).try_into().unwrap()) as usize;
    let mut token_starts = Vec::with_capacity(n + 1);
    token_starts.push(0);
    let mut end = 0u32;
    for &len in take(n) {
      end += len as u32;
      token_starts.push(end);
    }
    let firsts = u32s(take(4 * n));
    let seconds = u32s(take(4 * n));
    let split_table: Vec<(u32, u32)> = firsts.into_iter().zip(seconds).collect();
    let next_prefix_match = u32s(take(4 * n));
    let hash_factor = u64::from_le_bytes(take(8).try_into().unwrap());
    let mut automaton = || {
      let len = u32::from_le_bytes(take(4).try_into().unwrap()) as usize;
      unplanes(take(len))
    };
    let longest_searcher = automaton();
    let stub = automaton();
    // A token merged from two others is their pair's entry; an original token splits into itself.
    let pair_lookup = split_table
      .iter()
      .enumerate()
      .filter(|&(id, &(a, b))| (a, b) != (id as u32, id as u32))
      .map(|(id, &pair)| (pair, id as u32))
      .collect();
    Parts {
      all_tokens: Vec::new(),
      token_starts,
      bytes_hash_to_token: Vec::new(),
      split_table,
      pair_lookup,
      longest_searcher,
      overlapping_searcher: stub.clone(),
      overlapping_searcher_rev: stub,
      next_prefix_match,
      hash_factor,
    }
  }
}

/// Byte planes of 12-byte records after a 4-byte count: byte 0 of every record, then byte 1...
/// (whatever does not fill a record stays as it is, at the end).
const RECORD: usize = 12;
const HEAD: usize = 4;

#[allow(dead_code)] // build.rs's half
fn planes(data: &[u8]) -> Vec<u8> {
  let records = data.len().saturating_sub(HEAD) / RECORD;
  let body = &data[HEAD.min(data.len())..HEAD.min(data.len()) + records * RECORD];
  let mut out = Vec::with_capacity(data.len());
  out.extend(&data[..HEAD.min(data.len())]);
  for k in 0..RECORD {
    out.extend(body.iter().skip(k).step_by(RECORD));
  }
  out.extend(&data[HEAD.min(data.len()) + records * RECORD..]);
  out
}

fn unplanes(data: &[u8]) -> Vec<u8> {
  let records = data.len().saturating_sub(HEAD) / RECORD;
  let head = HEAD.min(data.len());
  let mut out = vec![0; data.len()];
  out[..head].copy_from_slice(&data[..head]);
  for k in 0..RECORD {
    let plane = &data[head + k * records..head + (k + 1) * records];
    for (r, &b) in plane.iter().enumerate() {
      out[head + r * RECORD + k] = b;
    }
  }
  out[head + records * RECORD..].copy_from_slice(&data[head + records * RECORD..]);
  out
}

/// A map, kept as its entries in order.
mod entries {
  use super::*;

  pub fn deserialize<'de, D, K, V>(d: D) -> Result<Vec<(K, V)>, D::Error>
  where
    D: Deserializer<'de>,
    K: Deserialize<'de>,
    V: Deserialize<'de>,
  {
    struct Entries<K, V>(std::marker::PhantomData<(K, V)>);
    impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Visitor<'de> for Entries<K, V> {
      type Value = Vec<(K, V)>;
      fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a map")
      }
      fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(entry) = map.next_entry()? {
          out.push(entry);
        }
        Ok(out)
      }
    }
    d.deserialize_map(Entries(std::marker::PhantomData))
  }
}

/// Bytes, as serde's byte string (what the automata serialize to).
mod bytes {
  use super::*;

  pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    struct Bytes;
    impl<'de> Visitor<'de> for Bytes {
      type Value = Vec<u8>;
      fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("bytes")
      }
      fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
      }
      fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
      }
      fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        let mut out = Vec::new();
        while let Some(b) = seq.next_element()? {
          out.push(b);
        }
        Ok(out)
      }
    }
    d.deserialize_bytes(Bytes)
  }
}
