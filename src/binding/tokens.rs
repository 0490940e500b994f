//! Token counting (lib/tokens.js): synchronous, on the caller's thread — it is CPU work.

use napi_derive::napi;

use super::error::{coded, INVALID_ARG};
use super::id::Text;
use crate::engine::tokens::{self, Encoding, Message};

fn encoding(name: &str) -> napi::Result<Encoding> {
  Encoding::from_name(name).ok_or_else(|| coded(INVALID_ARG, format!("unknown encoding {name:?}")))
}

/// The encoding of an OpenAI model (`o200k_base`, `cl100k_base`), or null when unknown.
#[napi(catch_unwind)]
pub fn encoding_for_model(model: String) -> Option<String> {
  Encoding::for_model(&model).map(|e| e.name().to_owned())
}

/// Tokens in `text` under encoding 0 (`o200k_base`) or 1 (`cl100k_base`). The hot path: the
/// text is read without a heap copy when short, the encoding passed as a number.
#[napi(catch_unwind, ts_args_type = "text: string, encoding: number")]
pub fn count_tokens_with(text: Text, encoding: u32) -> u32 {
  let e = if encoding == 1 {
    Encoding::Cl100k
  } else {
    Encoding::O200k
  };
  tokens::count(e, text.as_str()) as u32
}

/// Tokens in each text.
#[napi(catch_unwind)]
pub fn count_tokens_batch_with(
  texts: Vec<String>,
  encoding_name: String,
) -> napi::Result<Vec<u32>> {
  let e = encoding(&encoding_name)?;
  Ok(texts.iter().map(|t| tokens::count(e, t) as u32).collect())
}

/// Tokens a chat prompt costs: `roles[i]`, the text parts `texts[i]` and the name `names[i]`
/// ('' for none) of message `i`.
#[napi(catch_unwind)]
pub fn count_message_tokens_with(
  roles: Vec<String>,
  texts: Vec<Vec<String>>,
  names: Vec<String>,
  encoding_name: String,
) -> napi::Result<u32> {
  let e = encoding(&encoding_name)?;
  let messages: Vec<Message<'_>> = roles
    .iter()
    .zip(texts.iter())
    .zip(names.iter())
    .map(|((role, texts), name)| Message {
      role,
      texts: texts.iter().map(String::as_str).collect(),
      name: (!name.is_empty()).then_some(name.as_str()),
    })
    .collect();
  Ok(tokens::count_messages(e, &messages) as u32)
}
