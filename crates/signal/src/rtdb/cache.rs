//! The local copy of a streamed location and the child events derived from it, as Firebase's
//! SDKs do: every `put`/`patch` is applied to the cache and the immediate children before and
//! after are compared. A reconnect's initial `put /` is diffed the same way, so nothing is
//! delivered twice and nothing is lost across reconnects.

use std::collections::{BTreeMap, BTreeSet};

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

/// A change to one grandchild of a streamed location: `parent` is the immediate child it is
/// under, and `event`'s key is the grandchild's own key.
#[derive(Clone, Debug, PartialEq)]
pub struct NestedEvent {
    pub parent: String,
    /// `Changed` and `Removed` carry `previous: Null`: a nested cache is for queues whose
    /// entries are written once and deleted, and a copy of the old value is never needed.
    pub event: ChildEvent,
}

/// The local copy of a location whose children are queues (`ice_candidates/<space>/<me>`:
/// one child per sender, one grandchild per pushed candidate), reporting changes one
/// grandchild at a time.
///
/// [`Cache`] reports a child's whole new and old value on every change below it: for a queue
/// of n entries filled one push at a time that is two copies of the queue per push, O(n^2) in
/// all (issue 18, item 1: 5,000 candidates took a peer to 4.7 GB). Here each write costs what
/// it changes. At most `keep` grandchildren are kept per child: those beyond are reported as
/// added but not kept, so a writer that fills a queue faster than its reader empties it costs
/// the reader no memory; their later removal is reported from the path alone, and a reconnect
/// that finds them still there reports them as added again.
#[derive(Debug)]
pub struct NestedCache {
    kids: BTreeMap<String, BTreeMap<String, Value>>,
    keep: usize,
}

impl NestedCache {
    /// An empty cache keeping at most `keep` grandchildren per child.
    pub fn new(keep: usize) -> Self {
        NestedCache {
            kids: BTreeMap::new(),
            keep,
        }
    }

    /// What is kept, as one value (for [`super::StreamEvent::Synced`]).
    pub fn value(&self) -> Value {
        let map: Map<String, Value> = self
            .kids
            .iter()
            .map(|(k, v)| {
                let inner: Map<String, Value> =
                    v.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                (k.clone(), Value::Object(inner))
            })
            .collect();
        if map.is_empty() {
            Value::Null
        } else {
            Value::Object(map)
        }
    }

    /// How many grandchildren are kept under `parent`.
    pub fn kept(&self, parent: &str) -> usize {
        self.kids.get(parent).map_or(0, BTreeMap::len)
    }

    /// Applies `put` at `path` (relative to the streamed location).
    pub fn put(&mut self, path: &str, data: Value) -> Result<Vec<NestedEvent>, BadPath> {
        let rel = DbPath::parse(path).map_err(|_| BadPath(path.to_owned()))?;
        let mut out = Vec::new();
        self.apply(rel.segments(), data, &mut out);
        Ok(out)
    }

    /// Applies `patch` at `path`: each key of `data` (possibly a multi-segment path) replaced,
    /// in turn.
    pub fn patch(
        &mut self,
        path: &str,
        data: Map<String, Value>,
    ) -> Result<Vec<NestedEvent>, BadPath> {
        let base = DbPath::parse(path).map_err(|_| BadPath(path.to_owned()))?;
        let mut targets = Vec::with_capacity(data.len());
        for (k, v) in data {
            let rel = DbPath::parse(&k).map_err(|_| BadPath(k.clone()))?;
            targets.push((base.join(&rel), v));
        }
        let mut out = Vec::new();
        for (p, v) in targets {
            self.apply(p.segments(), v, &mut out);
        }
        Ok(out)
    }

    fn apply(&mut self, segs: &[String], data: Value, out: &mut Vec<NestedEvent>) {
        match segs {
            [] => {
                let mut new = children_of(data, 0);
                let old: Vec<String> = self.kids.keys().cloned().collect();
                for parent in old {
                    let replacement = new
                        .remove(&parent)
                        .map_or_else(Map::new, |v| children_of(v, 1));
                    self.replace_parent(&parent, replacement, out);
                }
                for (parent, v) in new {
                    self.replace_parent(&parent, children_of(v, 1), out);
                }
            }
            [parent] => {
                let replacement = children_of(data, 1);
                self.replace_parent(parent, replacement, out);
            }
            [parent, key] => {
                let value = stored(data, 2);
                self.set_kid(parent, key, value, out);
            }
            [parent, key, rest @ ..] => {
                let mut value = self
                    .kids
                    .get(parent)
                    .and_then(|k| k.get(key))
                    .cloned()
                    .unwrap_or(Value::Null);
                let rest = DbPath::parse(&rest.join("/")).unwrap_or_else(|_| DbPath::root());
                tree::set(&mut value, &rest, stored(data, segs.len()));
                self.set_kid(parent, key, (!value.is_null()).then_some(value), out);
            }
        }
    }

    /// `parent`'s grandchildren become `new`, reported as each one's difference.
    fn replace_parent(
        &mut self,
        parent: &str,
        mut new: Map<String, Value>,
        out: &mut Vec<NestedEvent>,
    ) {
        let old: Vec<String> = self
            .kids
            .get(parent)
            .map(|k| k.keys().cloned().collect())
            .unwrap_or_default();
        for key in old {
            let value = new.remove(&key);
            self.set_kid(parent, &key, value, out);
        }
        for (key, value) in new {
            self.set_kid(parent, &key, Some(value), out);
        }
    }

    /// Grandchild `parent/key` becomes `value` (`None`: removed).
    fn set_kid(
        &mut self,
        parent: &str,
        key: &str,
        value: Option<Value>,
        out: &mut Vec<NestedEvent>,
    ) {
        let kids = self.kids.entry(parent.to_owned()).or_default();
        let event = match value {
            None => {
                kids.remove(key);
                // Reported even when it was not kept: the reader may hold it.
                ChildEvent::Removed {
                    key: key.to_owned(),
                    previous: Value::Null,
                }
            }
            Some(value) => match kids.get_mut(key) {
                Some(held) if *held == value => return,
                Some(held) => {
                    *held = value.clone();
                    ChildEvent::Changed {
                        key: key.to_owned(),
                        value,
                        previous: Value::Null,
                    }
                }
                None => {
                    if kids.len() < self.keep {
                        kids.insert(key.to_owned(), value.clone());
                    }
                    ChildEvent::Added {
                        key: key.to_owned(),
                        value,
                    }
                }
            },
        };
        if kids.is_empty() {
            self.kids.remove(parent);
        }
        out.push(NestedEvent {
            parent: parent.to_owned(),
            event,
        });
    }
}

/// The children of `data` stored at `depth`, as a map (a non-object has none).
fn children_of(data: Value, depth: usize) -> Map<String, Value> {
    match stored(data, depth) {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
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

    fn nested(parent: &str, event: ChildEvent) -> NestedEvent {
        NestedEvent {
            parent: parent.into(),
            event,
        }
    }

    fn removed(k: &str) -> ChildEvent {
        ChildEvent::Removed {
            key: k.into(),
            previous: Value::Null,
        }
    }

    /// Issue 18, item 1: each push is reported as the one entry it adds, and each deletion as
    /// the one it removes, however long the queue.
    #[test]
    fn nested_events_carry_only_the_entry_that_changed() {
        let mut c = NestedCache::new(1000);
        assert!(c.put("/", Value::Null).unwrap().is_empty());
        for i in 0..500 {
            let ev = c.put(&format!("/b/k{i:04}"), json!({"n": i})).unwrap();
            assert_eq!(
                ev,
                vec![nested("b", added(&format!("k{i:04}"), json!({"n": i})))]
            );
        }
        let mut gone = Map::new();
        gone.insert("b/k0001".into(), Value::Null);
        gone.insert("b/k0002".into(), Value::Null);
        let ev = c.patch("/", gone).unwrap();
        assert_eq!(
            ev,
            vec![nested("b", removed("k0001")), nested("b", removed("k0002"))]
        );
        assert_eq!(c.kept("b"), 498);
        // A write inside an entry reports the entry's new value.
        let ev = c.put("/b/k0003/n", json!(7)).unwrap();
        assert_eq!(
            ev,
            vec![nested(
                "b",
                ChildEvent::Changed {
                    key: "k0003".into(),
                    value: json!({"n": 7}),
                    previous: Value::Null
                }
            )]
        );
        // The whole child removed: each entry it held.
        let ev = c.put("/b", Value::Null).unwrap();
        assert_eq!(ev.len(), 498);
        assert_eq!(c.value(), Value::Null);
    }

    #[test]
    fn nested_reconnect_yields_only_the_difference_and_entries_beyond_keep_are_not_kept() {
        let mut c = NestedCache::new(2);
        c.put("/", json!({"a": {"x": 1}, "b": {"y": 2}})).unwrap();
        let ev = c.put("/", json!({"a": {"x": 1, "z": 3}})).unwrap();
        assert_eq!(
            ev,
            vec![nested("a", added("z", json!(3))), nested("b", removed("y"))]
        );
        assert!(c
            .put("/", json!({"a": {"x": 1, "z": 3}}))
            .unwrap()
            .is_empty());
        // A third entry under "a" is reported but not kept.
        let ev = c.put("/a/w", json!(4)).unwrap();
        assert_eq!(ev, vec![nested("a", added("w", json!(4)))]);
        assert_eq!(c.kept("a"), 2);
        // Its removal is still reported (the reader may hold it)...
        assert_eq!(
            c.put("/a/w", Value::Null).unwrap(),
            vec![nested("a", removed("w"))]
        );
        // ... and a replay that still has it reports it again.
        let ev = c.put("/", json!({"a": {"x": 1, "z": 3, "w": 4}})).unwrap();
        assert_eq!(ev, vec![nested("a", added("w", json!(4)))]);
        // A non-object where a queue should be holds nothing.
        let ev = c.put("/a", json!("junk")).unwrap();
        assert_eq!(
            ev,
            vec![nested("a", removed("x")), nested("a", removed("z"))]
        );
    }
}
