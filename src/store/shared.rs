//! State a store keeps for the life of a class's instances rather than under a key: the
//! semantic cache's entries and vector index on a memory store, its mirror of the index on
//! Redis. Instances of one class on one store and prefix share one state per process; it is
//! dropped with the last instance that uses it.

use std::any::Any;
use std::sync::{Arc, Mutex, Weak};

use hashbrown::HashMap;

type Entry = Weak<dyn Any + Send + Sync>;

#[derive(Debug, Default)]
pub struct SharedStates {
  states: Mutex<HashMap<String, Entry>>,
}

impl SharedStates {
  /// The state named `name`, made by `make` when no live instance holds one (or it is of
  /// another type).
  pub fn get_or_init<T: Any + Send + Sync>(&self, name: &str, make: impl FnOnce() -> T) -> Arc<T> {
    let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
    states.retain(|_, w| w.strong_count() > 0);
    let found = states.get(name).and_then(Weak::upgrade);
    if let Some(state) = found.and_then(|s| s.downcast::<T>().ok()) {
      return state;
    }
    let state = Arc::new(make());
    let weak: Entry = Arc::downgrade(&state) as Entry;
    states.insert(name.to_owned(), weak);
    state
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn one_state_per_name_while_someone_holds_it() {
    let shared = SharedStates::default();
    let a = shared.get_or_init("x", || Mutex::new(1));
    *a.lock().unwrap() = 2;
    let b = shared.get_or_init("x", || Mutex::new(7));
    assert_eq!(*b.lock().unwrap(), 2);
    drop((a, b));
    assert_eq!(
      *shared.get_or_init("x", || Mutex::new(7)).lock().unwrap(),
      7
    );
    // another type under the name is a new state
    assert_eq!(*shared.get_or_init("x", || "s"), "s");
  }
}
