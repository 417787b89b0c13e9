//! The local copy of a streamed location and the child events derived from it, as Firebase's
//! SDKs do: every `put`/`patch` is applied to the cache and the immediate children before and
//! after are compared. A reconnect's initial `put /` is diffed the same way, so nothing is
//! delivered twice and nothing is lost across reconnects.

use std::collections::BTreeSet;

use rtdb::path::DbPath;
use rtdb::tree;
use serde_json::{Map, Value};

/// A change to one immediate child of the streamed location.
#[derive(Clone, Debug, PartialEq)]
pub enum ChildEvent {
    /// A child appeared.
    Added { key: String, value: Value },
    /// A child's value changed.
    Changed {
        key: String,
        /// The new value.
        value: Value,
        /// The value before.
        previous: Value,
    },
    /// A child disappeared.
    Removed {
        key: String,
        /// Its last value.
        previous: Value,
    },
}

// Builders for the room module's unit tests, which feed the pure state machines by hand.
#[cfg(test)]
impl ChildEvent {
    pub(crate) fn added(key: &str, value: Value) -> Self {
        ChildEvent::Added {
            key: key.into(),
            value,
        }
    }

    pub(crate) fn changed(key: &str, value: Value) -> Self {
        ChildEvent::Changed {
            key: key.into(),
            value,
            previous: Value::Null,
        }
    }
}

/// The streamed location's value, in stored form (arrays as integer-keyed objects).
#[derive(Debug, Default, Clone)]
pub struct Cache {
    value: Value,
}

/// A malformed event from the server.
#[derive(Debug, thiserror::Error)]
#[error("bad event path {0:?}")]
pub struct BadPath(String);

impl Cache {
    /// The current value (`Null` when empty).
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// Applies `put` at `path` (relative to the streamed location) and returns the child events.
    pub fn put(&mut self, path: &str, data: Value) -> Result<Vec<ChildEvent>, BadPath> {
        let rel = DbPath::parse(path).map_err(|_| BadPath(path.to_owned()))?;
        let affected = match rel.segments().first() {
            None => Affected::All,
            Some(k) => Affected::Keys(BTreeSet::from([k.clone()])),
        };
        let before = self.snapshot(&affected);
        tree::set(&mut self.value, &rel, stored(data, rel.len()));
        Ok(self.diff(before, &affected))
    }

    /// Applies `patch` at `path`: each key of `data` (possibly a multi-segment path) replaced.
    pub fn patch(
        &mut self,
        path: &str,
        data: Map<String, Value>,
    ) -> Result<Vec<ChildEvent>, BadPath> {
        let base = DbPath::parse(path).map_err(|_| BadPath(path.to_owned()))?;
        let mut targets = Vec::with_capacity(data.len());
        for (k, v) in data {
            let rel = DbPath::parse(&k).map_err(|_| BadPath(k.clone()))?;
            targets.push((base.join(&rel), v));
        }
        let keys: BTreeSet<String> = targets
            .iter()
            .filter_map(|(p, _)| p.segments().first().cloned())
            .collect();
        let affected = if targets.iter().any(|(p, _)| p.is_empty()) {
            Affected::All
        } else {
            Affected::Keys(keys)
        };
        let before = self.snapshot(&affected);
        for (p, v) in targets {
            let depth = p.len();
            tree::set(&mut self.value, &p, stored(v, depth));
        }
        Ok(self.diff(before, &affected))
    }

    fn children(&self) -> Option<&Map<String, Value>> {
        self.value.as_object()
    }

    fn snapshot(&self, affected: &Affected) -> Vec<(String, Value)> {
        let Some(kids) = self.children() else {
            return Vec::new();
        };
        match affected {
            Affected::All => kids.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            Affected::Keys(keys) => keys
                .iter()
                .filter_map(|k| kids.get(k).map(|v| (k.clone(), v.clone())))
                .collect(),
        }
    }

    fn diff(&self, before: Vec<(String, Value)>, affected: &Affected) -> Vec<ChildEvent> {
        let empty = Map::new();
        let now = self.children().unwrap_or(&empty);
        let mut events = Vec::new();
        let mut old_keys = BTreeSet::new();
        for (key, previous) in before {
            match now.get(&key) {
                None => events.push(ChildEvent::Removed {
                    key: key.clone(),
                    previous,
                }),
                Some(v) if *v != previous => events.push(ChildEvent::Changed {
                    key: key.clone(),
                    value: v.clone(),
                    previous,
                }),
                Some(_) => {}
            }
            old_keys.insert(key);
        }
        let candidates: Vec<&String> = match affected {
            Affected::All => now.keys().collect(),
            Affected::Keys(keys) => keys.iter().collect(),
        };
        for key in candidates {
            if !old_keys.contains(key) {
                if let Some(v) = now.get(key) {
                    events.push(ChildEvent::Added {
                        key: key.clone(),
                        value: v.clone(),
                    });
                }
            }
        }
        events
    }
}

enum Affected {
    All,
    Keys(BTreeSet<String>),
}

/// Server data to stored form; data the server sent is valid by construction, so a value the
/// normaliser refuses is kept as it came rather than dropped.
fn stored(data: Value, depth: usize) -> Option<Value> {
    match tree::normalize(data.clone(), depth) {
        Ok(v) => v,
        Err(_) => (!data.is_null()).then_some(data),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn added(k: &str, v: Value) -> ChildEvent {
        ChildEvent::Added {
            key: k.into(),
            value: v,
        }
    }

    #[test]
    fn initial_put_adds_every_child() {
        let mut c = Cache::default();
        let ev = c.put("/", json!({"a": 1, "b": {"x": true}})).unwrap();
        assert_eq!(
            ev,
            vec![added("a", json!(1)), added("b", json!({"x": true}))]
        );
    }

    #[test]
    fn deep_put_changes_one_child_and_delete_removes_it() {
        let mut c = Cache::default();
        c.put("/", json!({"a": {"n": 1}})).unwrap();
        let ev = c.put("/a/n", json!(2)).unwrap();
        assert_eq!(
            ev,
            vec![ChildEvent::Changed {
                key: "a".into(),
                value: json!({"n": 2}),
                previous: json!({"n": 1})
            }]
        );
        let ev = c.put("/a/n", Value::Null).unwrap();
        assert_eq!(
            ev,
            vec![ChildEvent::Removed {
                key: "a".into(),
                previous: json!({"n": 2})
            }]
        );
        assert_eq!(c.value(), &Value::Null);
    }

    #[test]
    fn patch_with_multi_segment_keys() {
        let mut c = Cache::default();
        c.put("/", json!({"a": 1, "b": 2})).unwrap();
        let data = json!({"a": null, "c/d": 3, "b": 2})
            .as_object()
            .unwrap()
            .clone();
        let ev = c.patch("/", data).unwrap();
        assert_eq!(
            ev,
            vec![
                ChildEvent::Removed {
                    key: "a".into(),
                    previous: json!(1)
                },
                added("c", json!({"d": 3}))
            ]
        );
    }

    #[test]
    fn reconnect_put_yields_only_the_difference() {
        let mut c = Cache::default();
        c.put("/", json!({"a": 1, "b": 2})).unwrap();
        // Reconnect: the server replays the whole value, with b gone and c new.
        let ev = c.put("/", json!({"a": 1, "c": 3})).unwrap();
        assert_eq!(
            ev,
            vec![
                ChildEvent::Removed {
                    key: "b".into(),
                    previous: json!(2)
                },
                added("c", json!(3))
            ]
        );
        // Replaying the same value again yields nothing.
        assert!(c.put("/", json!({"a": 1, "c": 3})).unwrap().is_empty());
    }

    #[test]
    fn arrays_are_cached_as_objects() {
        let mut c = Cache::default();
        let ev = c.put("/", json!(["x", "y"])).unwrap();
        assert_eq!(ev, vec![added("0", json!("x")), added("1", json!("y"))]);
        assert!(c.put("/../x", json!(1)).is_err() || c.value().is_object());
    }
}
