//! The data tree and Firebase's data rules, as pure functions over `serde_json::Value`.
//!
//! Stored form: `Value::Null` is "nothing here"; objects never hold nulls or empty objects;
//! arrays are stored as objects keyed "0", "1", ... and only turned back into arrays on the way
//! out ([`render`]), exactly as Firebase does.

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{Map, Value};

use crate::error::DbError;
use crate::path::{validate_key, DbPath, MAX_DEPTH};

/// Longest string value Firebase stores, in bytes.
pub const MAX_STRING_BYTES: usize = 10 * 1024 * 1024;

/// The value at `path`, if any.
pub fn get<'a>(root: &'a Value, path: &DbPath) -> Option<&'a Value> {
    let mut node = root;
    for seg in path.segments() {
        node = node.as_object()?.get(seg)?;
    }
    (!node.is_null()).then_some(node)
}

/// Writes `value` (already normalised, `None` deletes) at `path`, creating parents as needed and
/// removing parents left empty. Returns what was there, moved out rather than copied, so that a
/// writer can keep it to undo the write and free it where freeing costs no reader anything.
pub fn set(root: &mut Value, path: &DbPath, value: Option<Value>) -> Option<Value> {
    set_in(root, path.segments(), value)
}

fn set_in(node: &mut Value, segs: &[String], value: Option<Value>) -> Option<Value> {
    let Some((first, rest)) = segs.split_first() else {
        let old = std::mem::replace(node, value.unwrap_or(Value::Null));
        return (!old.is_null()).then_some(old);
    };
    if !node.is_object() {
        // Deleting below a leaf (or nothing) changes nothing.
        value.as_ref()?;
        // Writing below a leaf replaces the leaf, as in Firebase; nothing was at `path` itself.
        *node = Value::Object(Map::new());
    }
    let Value::Object(map) = node else {
        return None;
    };
    let old = match value {
        None => {
            let mut old = None;
            if let Some(child) = map.get_mut(first) {
                old = set_in(child, rest, None);
                if child.is_null() {
                    map.remove(first);
                }
            }
            old
        }
        Some(v) => set_in(
            map.entry(first.clone()).or_insert(Value::Null),
            rest,
            Some(v),
        ),
    };
    if map.is_empty() {
        *node = Value::Null;
    }
    old
}

/// The nearest location above `path` that holds a leaf, which writing at `path` would replace.
pub fn leaf_above(root: &Value, path: &DbPath) -> Option<(DbPath, Value)> {
    let mut node = root;
    for (depth, seg) in path.segments().iter().enumerate() {
        match node {
            Value::Object(map) => match map.get(seg) {
                Some(child) => node = child,
                None => return None,
            },
            Value::Null => return None,
            leaf => {
                return Some((path.prefix(depth), leaf.clone()));
            }
        }
    }
    None
}

/// Turns client data into stored form: arrays become integer-keyed objects, nulls and empty
/// objects vanish, keys and depth are checked. `depth` is the number of keys above `value`.
/// Returns `None` when nothing is left (a delete).
pub fn normalize(value: Value, depth: usize) -> Result<Option<Value>, DbError> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) if s.len() > MAX_STRING_BYTES => Err(DbError::BadData(format!(
            "Data to write is too large: a string of {} bytes; the limit is {MAX_STRING_BYTES}",
            s.len()
        ))),
        Value::Array(items) => {
            let map = items
                .into_iter()
                .enumerate()
                .map(|(i, v)| (i.to_string(), v))
                .collect();
            normalize_object(map, depth)
        }
        Value::Object(map) => normalize_object(map, depth),
        scalar => Ok(Some(scalar)),
    }
}

fn normalize_object(map: Map<String, Value>, depth: usize) -> Result<Option<Value>, DbError> {
    if map.is_empty() {
        return Ok(None);
    }
    if map.contains_key(".sv") {
        // Kept as it is for the writer to resolve against the stored value it replaces.
        return if is_server_value(&map) {
            Ok(Some(Value::Object(map)))
        } else {
            Err(bad_server_value())
        };
    }
    if depth >= MAX_DEPTH {
        return Err(DbError::BadData(format!(
            "Data to write is nested too deeply: more than {MAX_DEPTH} levels from the root"
        )));
    }
    if map.contains_key(".priority") || map.contains_key(".value") {
        return Err(DbError::BadData(
            "Invalid data; priorities (.priority/.value) are not supported by this server"
                .to_owned(),
        ));
    }
    let mut out = Map::new();
    for (key, child) in map {
        validate_key(&key).map_err(|why| DbError::BadData(format!("Invalid data; {why}")))?;
        if let Some(v) = normalize(child, depth + 1)? {
            out.insert(key, v);
        }
    }
    Ok((!out.is_empty()).then_some(Value::Object(out)))
}

/// `{".sv": "timestamp"}` or `{".sv": {"increment": <number>}}`.
fn is_server_value(map: &Map<String, Value>) -> bool {
    map.len() == 1
        && match map.get(".sv") {
            Some(Value::String(s)) => s == "timestamp",
            Some(Value::Object(op)) => {
                op.len() == 1 && matches!(op.get("increment"), Some(Value::Number(_)))
            }
            _ => false,
        }
}

/// Whether normalised data still holds server-value placeholders (no stored key starts with a
/// dot, so a `.sv` key can only be one).
pub fn has_server_values(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.contains_key(".sv") || map.values().any(has_server_values),
        _ => false,
    }
}

/// Stored form to Firebase's output form: integer-keyed objects that are more than half full come
/// back as arrays (missing slots as `null`).
pub fn render(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            if let Some(len) = array_len(map) {
                let mut items = vec![Value::Null; len];
                for (k, v) in map {
                    if let Ok(i) = k.parse::<usize>() {
                        items[i] = render(v);
                    }
                }
                Value::Array(items)
            } else {
                Value::Object(map.iter().map(|(k, v)| (k.clone(), render(v))).collect())
            }
        }
        other => other.clone(),
    }
}

/// Serialises a stored value in output form, as [`render`] would, without building the copy:
/// a large value costs its text, not a second tree.
pub struct Rendered<'a>(pub &'a Value);

impl Serialize for Rendered<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Value::Object(map) = self.0 else {
            return self.0.serialize(s);
        };
        if let Some(len) = array_len(map) {
            let mut items: Vec<Option<&Value>> = vec![None; len];
            for (k, v) in map {
                if let Some(slot) = k.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                    *slot = Some(v);
                }
            }
            let mut seq = s.serialize_seq(Some(len))?;
            for item in items {
                match item {
                    Some(v) => seq.serialize_element(&Rendered(v))?,
                    None => seq.serialize_element(&())?,
                }
            }
            seq.end()
        } else {
            let mut out = s.serialize_map(Some(map.len()))?;
            for (k, v) in map {
                out.serialize_entry(k, &Rendered(v))?;
            }
            out.end()
        }
    }
}

/// `shallow=true`, serialised straight from the tree: objects keep their keys with each child
/// replaced by `true`.
pub struct Shallow<'a>(pub &'a Value);

impl Serialize for Shallow<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Value::Object(map) = self.0 else {
            return self.0.serialize(s);
        };
        let mut out = s.serialize_map(Some(map.len()))?;
        for k in map.keys() {
            out.serialize_entry(k, &true)?;
        }
        out.end()
    }
}

/// `Some(max_key + 1)` when every key is a canonical non-negative integer and the largest is
/// smaller than twice the number of keys (Firebase's test for "this was an array").
fn array_len(map: &Map<String, Value>) -> Option<usize> {
    let mut max = 0usize;
    for key in map.keys() {
        let i = canonical_index(key)?;
        max = max.max(i);
    }
    (max < 2 * map.len()).then_some(max + 1)
}

fn canonical_index(key: &str) -> Option<usize> {
    let canonical =
        key == "0" || (!key.starts_with('0') && key.bytes().all(|b| b.is_ascii_digit()));
    if !canonical || key.len() > 9 {
        return None;
    }
    key.parse().ok()
}

/// Resolves `{".sv": ...}` placeholders in a client value. `current` is the stored value at the
/// same location (for increments), `now_ms` the server clock.
pub fn resolve_server_values(
    value: Value,
    current: Option<&Value>,
    now_ms: u64,
) -> Result<Value, DbError> {
    match value {
        Value::Object(map) if map.contains_key(".sv") => {
            if map.len() != 1 {
                return Err(bad_server_value());
            }
            match map.get(".sv") {
                Some(Value::String(s)) if s == "timestamp" => Ok(Value::from(now_ms)),
                Some(Value::Object(op)) if op.len() == 1 => match op.get("increment") {
                    Some(Value::Number(delta)) => increment(current, delta),
                    _ => Err(bad_server_value()),
                },
                _ => Err(bad_server_value()),
            }
        }
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let cur = current.and_then(|c| c.as_object()).and_then(|c| c.get(&k));
                out.insert(k, resolve_server_values(v, cur, now_ms)?);
            }
            Ok(Value::Object(out))
        }
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, v) in items.into_iter().enumerate() {
                let cur = current
                    .and_then(|c| c.as_object())
                    .and_then(|c| c.get(&i.to_string()));
                out.push(resolve_server_values(v, cur, now_ms)?);
            }
            Ok(Value::Array(out))
        }
        other => Ok(other),
    }
}

fn bad_server_value() -> DbError {
    DbError::BadData(
        "Invalid data; a server value must be {\".sv\": \"timestamp\"} or {\".sv\": {\"increment\": <number>}}"
            .to_owned(),
    )
}

/// Integers beyond 2^53 cannot be told apart once a client (every Firebase SDK reads numbers as
/// doubles) has read them, so sums past it are kept as floats, as Firebase keeps every number.
const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// Atomic add: integers stay integers while they are exact in a double, anything else becomes a
/// float; a non-number (or absent) current value is replaced by the delta, as Firebase does. A
/// sum that no number can hold is refused and the stored value kept: storing it as `null` would
/// delete the value, which is what this used to do.
fn increment(current: Option<&Value>, delta: &serde_json::Number) -> Result<Value, DbError> {
    let Some(Value::Number(cur)) = current else {
        return Ok(Value::Number(delta.clone()));
    };
    if let (Some(a), Some(b)) = (cur.as_i64(), delta.as_i64()) {
        if let Some(sum) = a.checked_add(b) {
            if (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&sum) {
                return Ok(Value::from(sum));
            }
        }
    }
    let sum = cur.as_f64().unwrap_or(0.0) + delta.as_f64().unwrap_or(0.0);
    serde_json::Number::from_f64(sum)
        .map(Value::Number)
        .ok_or_else(|| {
            DbError::BadData(format!(
                "Invalid data; incrementing {cur} by {delta} gives a number too large to store; the value is unchanged"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &str) -> DbPath {
        DbPath::parse(s).unwrap()
    }

    #[test]
    fn set_creates_and_prunes_parents() {
        let mut root = Value::Null;
        set(&mut root, &p("/a/b/c"), Some(json!(1)));
        set(&mut root, &p("/a/x"), Some(json!("y")));
        assert_eq!(root, json!({"a": {"b": {"c": 1}, "x": "y"}}));
        set(&mut root, &p("/a/b/c"), None);
        assert_eq!(root, json!({"a": {"x": "y"}}));
        set(&mut root, &p("/a/x"), None);
        assert_eq!(root, Value::Null);
    }

    #[test]
    fn writing_below_a_leaf_replaces_it() {
        let mut root = json!({"a": 5});
        set(&mut root, &p("/a/b"), Some(json!(true)));
        assert_eq!(root, json!({"a": {"b": true}}));
        set(&mut root, &p("/q/r"), None);
        assert_eq!(root, json!({"a": {"b": true}}));
    }

    #[test]
    fn a_leaf_above_is_found_so_a_write_below_it_can_be_undone() {
        let root = json!({"a": {"b": 5}});
        assert_eq!(
            leaf_above(&root, &p("/a/b/c/d")),
            Some((p("/a/b"), json!(5)))
        );
        assert_eq!(leaf_above(&root, &p("/a/b")), None);
        assert_eq!(leaf_above(&root, &p("/a/x/y")), None);
    }

    #[test]
    fn server_values_survive_normalising_until_resolved() {
        let v = normalize(json!({"t": {".sv": "timestamp"}, "n": [1]}), 0)
            .unwrap()
            .unwrap();
        assert!(has_server_values(&v));
        assert!(normalize(json!({"t": {".sv": "soon"}}), 0).is_err());
        let v = resolve_server_values(v, None, 9).unwrap();
        assert_eq!(v, json!({"t": 9, "n": {"0": 1}}));
        assert!(!has_server_values(&v));
    }

    #[test]
    fn normalize_drops_nulls_and_empties_and_stores_arrays_as_objects() {
        let v = normalize(
            json!({"a": null, "b": {}, "c": [1, null, {"d": {}}], "e": {"f": 2}}),
            0,
        )
        .unwrap()
        .unwrap();
        assert_eq!(v, json!({"c": {"0": 1}, "e": {"f": 2}}));
        assert_eq!(normalize(json!({"a": {"b": null}}), 0).unwrap(), None);
    }

    #[test]
    fn normalize_checks_keys_and_depth() {
        assert!(normalize(json!({"a.b": 1}), 0).is_err());
        let mut deep = json!(1);
        for _ in 0..32 {
            deep = json!({ "k": deep });
        }
        assert!(normalize(deep.clone(), 0).is_ok());
        assert!(normalize(deep, 1).is_err());
    }

    #[test]
    fn render_rebuilds_dense_arrays_only() {
        assert_eq!(
            render(&json!({"0": "a", "1": "b", "3": "d"})),
            json!(["a", "b", null, "d"])
        );
        assert_eq!(
            render(&json!({"0": "a", "5": "f"})),
            json!({"0": "a", "5": "f"})
        );
        assert_eq!(render(&json!({"01": 1, "1": 2})), json!({"01": 1, "1": 2}));
        assert_eq!(render(&json!({"x": {"0": true}})), json!({"x": [true]}));
    }

    #[test]
    fn server_values() {
        let v = resolve_server_values(
            json!({"t": {".sv": "timestamp"}, "n": {".sv": {"increment": 2}}}),
            Some(&json!({"n": 40})),
            7,
        )
        .unwrap();
        assert_eq!(v, json!({"t": 7, "n": 42}));
        let v = resolve_server_values(json!({".sv": {"increment": 1.5}}), Some(&json!("text")), 0)
            .unwrap();
        assert_eq!(v, json!(1.5));
        assert!(resolve_server_values(json!({".sv": "bogus"}), None, 0).is_err());
        assert!(resolve_server_values(json!({".sv": {"increment": "1"}}), None, 0).is_err());
    }

    #[test]
    fn an_increment_past_every_number_is_refused_not_stored_as_null() {
        let inc = || json!({".sv": {"increment": 1e308}});
        let once = resolve_server_values(inc(), None, 0).unwrap();
        assert_eq!(once, json!(1e308));
        match resolve_server_values(inc(), Some(&once), 0) {
            Err(DbError::BadData(msg)) => assert!(msg.contains("too large"), "{msg}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn integer_increments_stay_exact_only_within_a_double() {
        let inc = |d: i64| json!({".sv": {"increment": d}});
        let max = (1i64 << 53) - 1;
        assert_eq!(
            resolve_server_values(inc(1), Some(&json!(max - 1)), 0).unwrap(),
            json!(max)
        );
        let past = resolve_server_values(inc(2), Some(&json!(max)), 0).unwrap();
        assert!(past.is_f64(), "{past}");
        assert_eq!(past.as_f64(), Some((max + 2) as f64));
    }
}
