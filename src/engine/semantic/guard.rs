//! The guard: two questions whose vectors are close can still ask opposite things — "enable
//! 2FA" and "disable 2FA" score 0.82–0.99 on common embedding models — or about different
//! numbers ("top 5" / "top 10", dates, amounts). [`compatible`] refuses a match unless both
//! texts carry the same negations, the same words of opposite pairs, and the same numbers.
//!
//! It errs towards a miss: "turn on 2FA" does not match a cached "enable 2FA" (different
//! polar words), which costs a model call, never a wrong answer.
//!
//! ```
//! use tollgate::engine::semantic::guard::compatible;
//! assert!(compatible("How do I enable 2FA?", "how can i enable 2FA"));
//! assert!(!compatible("How do I enable 2FA?", "How do I disable 2FA?"));
//! assert!(!compatible("Is it safe?", "Is it not safe?"));
//! assert!(!compatible("top 5 hotels in Rome", "top 10 hotels in Rome"));
//! assert!(compatible("top five hotels", "top 5 hotels"));
//! ```

/// Words that negate what follows (contractions ending in "n't" count too).
const NEGATIONS: &[&str] = &[
  "not", "no", "never", "none", "nobody", "nothing", "nowhere", "neither", "nor", "without",
  "cannot", "cant", "dont", "doesnt", "didnt", "isnt", "arent", "wasnt", "werent", "wont",
  "wouldnt", "shouldnt", "couldnt", "hasnt", "havent", "hadnt", "mustnt", "neednt", "aint",
];

/// Pairs of opposite words: (word, family, side). A text's polar words must match exactly.
const OPPOSITES: &[(&[&str], &[&str])] = &[
  (&["enable"], &["disable"]),
  (&["activate"], &["deactivate"]),
  (
    &["allow", "permit"],
    &["deny", "disallow", "forbid", "block", "prohibit"],
  ),
  (&["include"], &["exclude"]),
  (&["add", "insert", "create"], &["remove", "delete", "drop"]),
  (&["increase", "raise"], &["decrease", "reduce", "lower"]),
  (&["start", "begin"], &["stop", "end", "finish"]),
  (&["open"], &["close", "shut"]),
  (&["lock"], &["unlock"]),
  (&["encrypt"], &["decrypt"]),
  (&["encode"], &["decode"]),
  (&["install"], &["uninstall"]),
  (&["subscribe"], &["unsubscribe"]),
  (&["connect"], &["disconnect"]),
  (&["mount"], &["unmount"]),
  (&["show", "display"], &["hide"]),
  (&["accept", "approve"], &["reject", "decline", "refuse"]),
  (&["before"], &["after"]),
  (&["above"], &["below"]),
  (&["more", "most"], &["less", "least", "fewer", "fewest"]),
  (&["max", "maximum"], &["min", "minimum"]),
  (&["higher", "highest"], &["lower", "lowest"]),
  (
    &["larger", "largest", "bigger", "biggest"],
    &["smaller", "smallest"],
  ),
  (&["faster", "fastest"], &["slower", "slowest"]),
  (&["best", "better"], &["worst", "worse"]),
  (&["true"], &["false"]),
  (&["yes"], &["no"]),
  (&["on"], &["off"]),
  (&["import"], &["export"]),
  (&["upload"], &["download"]),
  (&["login", "signin"], &["logout", "signout"]),
  (&["buy"], &["sell"]),
  (&["inside", "internal"], &["outside", "external"]),
  (&["input"], &["output"]),
  (&["positive"], &["negative"]),
  (&["like", "love"], &["dislike", "hate"]),
  (&["agree"], &["disagree"]),
  (&["legal"], &["illegal"]),
  (&["possible"], &["impossible"]),
  (&["safe"], &["unsafe"]),
  (&["valid"], &["invalid"]),
  (&["always"], &["never"]),
  (&["all", "every"], &["none"]),
  (
    &["first", "earliest", "oldest"],
    &["last", "latest", "newest"],
  ),
  (&["ascending"], &["descending"]),
  (&["win"], &["lose"]),
  (&["push"], &["pull"]),
];

const NUMBER_WORDS: &[(&str, f64)] = &[
  ("zero", 0.0),
  ("one", 1.0),
  ("two", 2.0),
  ("three", 3.0),
  ("four", 4.0),
  ("five", 5.0),
  ("six", 6.0),
  ("seven", 7.0),
  ("eight", 8.0),
  ("nine", 9.0),
  ("ten", 10.0),
  ("eleven", 11.0),
  ("twelve", 12.0),
  ("thirteen", 13.0),
  ("fourteen", 14.0),
  ("fifteen", 15.0),
  ("sixteen", 16.0),
  ("seventeen", 17.0),
  ("eighteen", 18.0),
  ("nineteen", 19.0),
  ("twenty", 20.0),
  ("thirty", 30.0),
  ("forty", 40.0),
  ("fifty", 50.0),
  ("sixty", 60.0),
  ("seventy", 70.0),
  ("eighty", 80.0),
  ("ninety", 90.0),
  ("hundred", 100.0),
  ("thousand", 1e3),
  ("million", 1e6),
  ("billion", 1e9),
  ("dozen", 12.0),
  ("half", 0.5),
  ("once", 1.0),
  ("twice", 2.0),
  ("single", 1.0),
  ("double", 2.0),
  ("triple", 3.0),
  ("second", 2.0),
  ("third", 3.0),
  ("fourth", 4.0),
  ("fifth", 5.0),
  ("sixth", 6.0),
  ("seventh", 7.0),
  ("eighth", 8.0),
  ("ninth", 9.0),
  ("tenth", 10.0),
  ("k", 1e3),
  ("m", 1e6),
  ("bn", 1e9),
];

/// What the guard compares: negation count, polar words, numbers (each sorted).
#[derive(Debug, PartialEq)]
pub struct Signature {
  negations: usize,
  polar: Vec<(usize, bool)>,
  numbers: Vec<u64>,
}

/// Word forms tried for a match in the lists: the word, then common inflections removed.
fn stems(w: &str) -> impl Iterator<Item = std::borrow::Cow<'_, str>> {
  let mut out: Vec<std::borrow::Cow<'_, str>> = vec![w.into()];
  for suffix in ["s", "d", "ed", "ing", "es"] {
    if let Some(base) = w.strip_suffix(suffix) {
      if base.len() >= 2 {
        out.push(base.into());
        if suffix == "ing" || suffix == "ed" {
          out.push(format!("{base}e").into());
        }
      }
    }
  }
  out.into_iter()
}

fn polar(word: &str) -> Option<(usize, bool)> {
  for stem in stems(word) {
    for (family, (yes, no)) in OPPOSITES.iter().enumerate() {
      if yes.contains(&stem.as_ref()) {
        return Some((family, true));
      }
      if no.contains(&stem.as_ref()) {
        return Some((family, false));
      }
    }
  }
  None
}

/// The signature of a text.
pub fn signature(text: &str) -> Signature {
  let mut sig = Signature {
    negations: 0,
    polar: Vec::new(),
    numbers: Vec::new(),
  };
  let lower = text.to_lowercase();
  let chars: Vec<char> = lower.chars().collect();
  let mut i = 0;
  while i < chars.len() {
    let c = chars[i];
    if c.is_ascii_digit() {
      // A number: digits with , or . between digits (1,000 · 3.5 · 2024-05-01 gives three).
      let mut digits = String::new();
      while i < chars.len() {
        let d = chars[i];
        let between = (d == ',' || d == '.')
          && i + 1 < chars.len()
          && chars[i + 1].is_ascii_digit()
          && !digits.is_empty();
        if d.is_ascii_digit() || (d == '.' && between) {
          digits.push(d);
        } else if !(d == ',' && between) {
          break;
        }
        i += 1;
      }
      if let Ok(n) = digits.parse::<f64>() {
        sig.numbers.push(n.to_bits());
      }
      continue;
    }
    if c.is_alphabetic() || c == '\'' || c == '’' {
      let mut word = String::new();
      let mut raw = String::new();
      while i < chars.len() && (chars[i].is_alphabetic() || chars[i] == '\'' || chars[i] == '’') {
        raw.push(if chars[i] == '’' { '\'' } else { chars[i] });
        if chars[i].is_alphabetic() {
          word.push(chars[i]);
        }
        i += 1;
      }
      // Contractions are read without their apostrophe ("isn't" → "isnt"); any "n't" counts.
      if NEGATIONS.contains(&word.as_str()) || raw.ends_with("n't") {
        sig.negations += 1;
      }
      if let Some((_, v)) = NUMBER_WORDS.iter().find(|(w, _)| *w == word) {
        sig.numbers.push(v.to_bits());
      }
      if let Some(p) = polar(&word) {
        sig.polar.push(p);
      }
      continue;
    }
    i += 1;
  }
  sig.polar.sort_unstable();
  sig.numbers.sort_unstable();
  sig
}

/// True when a cached answer to `cached` may be served for `asked`.
pub fn compatible(asked: &str, cached: &str) -> bool {
  signature(asked) == signature(cached)
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn paraphrases_pass() {
    assert!(compatible("What is Node.js?", "what is node.js"));
    assert!(compatible(
      "Can you explain Node.js?",
      "Please explain Node.js"
    ));
    assert!(compatible(
      "How do I enable two-factor auth?",
      "how to enable two factor auth"
    ));
    assert!(compatible("Disabling 2FA", "disable 2FA"));
  }

  #[test]
  fn negations_and_opposites_fail() {
    assert!(!compatible("How do I enable 2FA?", "How do I disable 2FA?"));
    assert!(!compatible("Is Rust safe?", "Is Rust unsafe?"));
    assert!(!compatible("Is it safe?", "Isn't it safe?"));
    assert!(!compatible("Is it safe?", "Is it not safe?"));
    assert!(!compatible("I can log in", "I cannot log in"));
    assert!(!compatible("sort ascending", "sort descending"));
    assert!(!compatible("events before 2020", "events after 2020"));
    assert!(!compatible("turn on dark mode", "turn off dark mode"));
  }

  #[test]
  fn numbers_must_match() {
    assert!(!compatible("top 5 hotels", "top 10 hotels"));
    assert!(!compatible(
      "flights on 2024-05-01",
      "flights on 2024-05-02"
    ));
    assert!(!compatible("convert $1,000 to EUR", "convert $100 to EUR"));
    assert!(!compatible("3.5% of 200", "3.6% of 200"));
    assert!(!compatible("give me three ideas", "give me two ideas"));
    assert!(compatible("convert $1,000 to EUR", "convert $1000 to EUR"));
    assert!(compatible("top ten films", "top 10 films"));
    assert!(compatible("version 3.0", "version 3"));
  }
}
