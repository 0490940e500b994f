//! `BytePairEncoding`'s serde form fed straight from [`Parts`], with no serialized bytes between.

use serde::de::value::{BytesDeserializer, Error, MapDeserializer, SeqDeserializer};
use serde::de::{DeserializeSeed, Deserializer, IntoDeserializer, SeqAccess, Visitor};

use super::format::Parts;

/// A deserializer that hands over the parts as the sequence of the struct's fields.
pub struct PartsDeserializer(pub Parts);

impl<'de> Deserializer<'de> for PartsDeserializer {
  type Error = Error;

  fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
    visitor.visit_seq(Fields {
      parts: self.0,
      next: 0,
    })
  }

  serde::forward_to_deserialize_any! {
    bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
    unit unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier ignored_any
  }
}

struct Fields {
  parts: Parts,
  next: usize,
}

type Pair = SeqDeserializer<std::array::IntoIter<u32, 2>, Error>;

fn pair((a, b): (u32, u32)) -> Pair {
  SeqDeserializer::new([a, b].into_iter())
}

impl<'de> SeqAccess<'de> for Fields {
  type Error = Error;

  fn next_element_seed<T: DeserializeSeed<'de>>(
    &mut self,
    seed: T,
  ) -> Result<Option<T::Value>, Error> {
    use std::mem::take;
    let p = &mut self.parts;
    let value = match self.next {
      0 => seed.deserialize(SeqDeserializer::new(take(&mut p.all_tokens).into_iter())),
      1 => seed.deserialize(SeqDeserializer::new(take(&mut p.token_starts).into_iter())),
      2 => seed.deserialize(MapDeserializer::new(
        take(&mut p.bytes_hash_to_token).into_iter(),
      )),
      3 => seed.deserialize(SeqDeserializer::new(
        take(&mut p.split_table).into_iter().map(pair),
      )),
      4 => seed.deserialize(MapDeserializer::new(
        take(&mut p.pair_lookup)
          .into_iter()
          .map(|(k, v)| (pair(k), v)),
      )),
      5 => seed.deserialize(BytesDeserializer::new(&p.longest_searcher)),
      6 => seed.deserialize(BytesDeserializer::new(&p.overlapping_searcher)),
      7 => seed.deserialize(BytesDeserializer::new(&p.overlapping_searcher_rev)),
      8 => seed.deserialize(SeqDeserializer::new(
        take(&mut p.next_prefix_match).into_iter(),
      )),
      9 => seed.deserialize(p.hash_factor.into_deserializer()),
      _ => return Ok(None),
    }?;
    self.next += 1;
    Ok(Some(value))
  }
}
