//! The stored form of a `SessionStore` session, which lets `append` add messages atomically
//! without parsing or rewriting the rest of the session.
//!
//! A session whose data is an object with a `messages` array is kept as two JSON texts:
//! `head`, the object without `messages`, and `messages`, the array. `append` splices new
//! items into the array text; `assemble` puts `messages` back as the object's first property.
//! Any other data is kept whole in `head`, and `append` refuses it.
//!
//! The Redis store keeps the same two texts as hash fields and splices in
//! `store/redis/scripts/session.lua`.
//!
//! ```
//! use tollgate::engine::session::Session;
//! let mut s = Session { head: r#"{"user":"u1"}"#.into(), messages: Some("[]".into()) };
//! s.append(r#"{"role":"user","content":"hi"}"#).unwrap();
//! assert_eq!(s.assemble(), r#"{"messages":[{"role":"user","content":"hi"}],"user":"u1"}"#);
//! ```

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
  /// JSON of the data without `messages` (or of all the data when `messages` is `None`).
  pub head: String,
  /// JSON array text of the messages, when the data is an object with a `messages` array.
  pub messages: Option<String>,
}

/// What `append_capped` did.
#[derive(Debug, PartialEq, Eq)]
pub enum AppendOutcome {
  /// Appended; the session's new size in bytes.
  Appended(usize),
  /// Refused: the session would grow to this many bytes, over the cap.
  TooLarge(usize),
  /// Refused: the session's data is not an object with a `messages` array.
  NotAMessageList,
}

/// `append` was asked to add messages to a session that does not keep a `messages` array.
#[derive(Debug, PartialEq, Eq)]
pub struct NotAMessageList;

impl Session {
  /// A new session holding only `messages: []`.
  pub fn empty() -> Self {
    Session {
      head: "{}".into(),
      messages: Some("[]".into()),
    }
  }

  /// Stored size in bytes, the figure a size cap applies to.
  pub fn bytes(&self) -> usize {
    self.head.len() + self.messages.as_ref().map_or(0, String::len)
  }

  /// Size after appending `items` (a comma-separated list of JSON values). A session without a
  /// `messages` array cannot take them, so it has no such size: that refusal comes before any
  /// size cap (as in `session.lua`).
  pub fn bytes_after_append(&self, items: &str) -> Result<usize, NotAMessageList> {
    let list = self.messages.as_ref().ok_or(NotAMessageList)?;
    let sep = usize::from(!is_empty_list(list));
    Ok(self.bytes() + items.len() + sep)
  }

  /// Appends `items`, a non-empty comma-separated list of JSON values, to the array.
  pub fn append(&mut self, items: &str) -> Result<(), NotAMessageList> {
    let list = self.messages.as_mut().ok_or(NotAMessageList)?;
    *list = splice(list, items);
    Ok(())
  }

  /// Appends `items` unless the session would grow past `max_bytes`; a refused append leaves
  /// the session as it was. A session that is not a message list is refused as such before
  /// any size cap, as `session.lua` decides.
  pub fn append_capped(&mut self, items: &str, max_bytes: Option<usize>) -> AppendOutcome {
    let Ok(size) = self.bytes_after_append(items) else {
      return AppendOutcome::NotAMessageList;
    };
    if max_bytes.is_some_and(|cap| size > cap) {
      return AppendOutcome::TooLarge(size);
    }
    if self.append(items).is_err() {
      return AppendOutcome::NotAMessageList;
    }
    AppendOutcome::Appended(self.bytes())
  }

  /// The session's data as one JSON text.
  pub fn assemble(&self) -> String {
    match &self.messages {
      None => self.head.clone(),
      Some(list) => {
        let rest = self
          .head
          .trim_start()
          .strip_prefix('{')
          .unwrap_or("}")
          .trim_start();
        if rest.starts_with('}') {
          format!("{{\"messages\":{list}}}")
        } else {
          format!("{{\"messages\":{list},{rest}")
        }
      }
    }
  }
}

/// `[a,b]` + `c,d` → `[a,b,c,d]`; `[]` + `c` → `[c]`.
fn splice(list: &str, items: &str) -> String {
  if is_empty_list(list) {
    return format!("[{items}]");
  }
  let body = list.trim_end().strip_suffix(']').unwrap_or(list);
  format!("{body},{items}]")
}

fn is_empty_list(list: &str) -> bool {
  let inner = list
    .trim()
    .strip_prefix('[')
    .and_then(|l| l.strip_suffix(']'));
  inner.is_some_and(|i| i.trim().is_empty())
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn append_to_empty_and_non_empty_lists() {
    let mut s = Session::empty();
    s.append("1").unwrap();
    s.append("2,3").unwrap();
    assert_eq!(s.messages.as_deref(), Some("[1,2,3]"));
    assert_eq!(s.assemble(), r#"{"messages":[1,2,3]}"#);
    assert_eq!(s.bytes(), 2 + 7);
  }

  #[test]
  fn bytes_after_append_matches_append() {
    for start in ["[]", "[1]"] {
      let mut s = Session {
        head: "{}".into(),
        messages: Some(start.into()),
      };
      let predicted = s.bytes_after_append("22,33").unwrap();
      s.append("22,33").unwrap();
      assert_eq!(s.bytes(), predicted);
    }
  }

  #[test]
  fn raw_sessions_refuse_append_and_assemble_unchanged() {
    let mut s = Session {
      head: "\"just text\"".into(),
      messages: None,
    };
    assert_eq!(s.bytes_after_append("1"), Err(NotAMessageList));
    assert_eq!(s.append("1"), Err(NotAMessageList));
    assert_eq!(s.assemble(), "\"just text\"");
  }

  #[test]
  fn head_fields_follow_messages() {
    let s = Session {
      head: r#"{"metadata":{"model":"gpt-4o"}}"#.into(),
      messages: Some("[]".into()),
    };
    assert_eq!(
      s.assemble(),
      r#"{"messages":[],"metadata":{"model":"gpt-4o"}}"#
    );
  }
}
