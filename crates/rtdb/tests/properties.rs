//! Property tests for the parsers (paths, keys, queries), the tree operations and the log format.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::BTreeMap;

use proptest::prelude::*;
use rtdb::path::{validate_key, DbPath};
use rtdb::query::{compare_keys, Params};
use rtdb::store::log;
use rtdb::tree;
use serde_json::{json, Value};

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        "[a-z ]{0,6}".prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![Just(Value::Null), scalar()];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-c]{1,2}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn small_path() -> impl Strategy<Value = DbPath> {
    prop::collection::vec("[a-c]", 0..4).prop_map(|segs| DbPath::parse(&segs.join("/")).unwrap())
}

/// Flattens a stored tree to leaf path -> scalar, the model the tree must agree with.
fn leaves(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(m) => {
            assert!(!m.is_empty(), "an empty object was stored at {prefix}");
            for (k, c) in m {
                assert!(!c.is_null(), "a null was stored at {prefix}/{k}");
                leaves(&format!("{prefix}/{k}"), c, out);
            }
        }
        Value::Array(_) => panic!("an array was stored at {prefix}"),
        Value::Null => {}
        s => {
            out.insert(prefix.to_owned(), s.clone());
        }
    }
}

proptest! {
    #[test]
    fn path_parsing_never_panics_and_round_trips(raw in "\\PC{0,40}") {
        if let Ok(p) = DbPath::parse(&raw) {
            prop_assert_eq!(DbPath::parse(&p.to_string()).unwrap(), p.clone());
            for seg in p.segments() {
                prop_assert!(validate_key(seg).is_ok());
            }
        }
        let _ = DbPath::from_url_path(&raw);
    }

    #[test]
    fn accepted_keys_follow_firebase_rules(key in "\\PC{0,12}") {
        if validate_key(&key).is_ok() {
            prop_assert!(!key.is_empty() && key.len() <= 768);
            prop_assert!(!key.contains(['.', '$', '#', '[', ']', '/']));
            prop_assert!(!key.chars().any(|c| c.is_ascii_control()));
        }
    }

    #[test]
    fn query_parsing_never_panics(raw in "[a-zA-Z=&%$\"0-9]{0,60}") {
        let _ = Params::parse(Some(&raw));
    }

    /// Random sets, applied to the tree and to a flat model of leaves, agree; stored form never
    /// holds nulls, empty objects or arrays.
    #[test]
    fn tree_sets_agree_with_a_flat_model(ops in prop::collection::vec((small_path(), json_value()), 1..12)) {
        let mut root = Value::Null;
        let mut model: BTreeMap<String, Value> = BTreeMap::new();
        for (path, value) in ops {
            let Ok(stored) = tree::normalize(value, path.len()) else { continue };
            let prefix = path.to_string();
            let prefix = if prefix == "/" { String::new() } else { prefix };
            // Replace everything at or below `path`; a leaf above `path` is replaced too.
            model.retain(|k, _| !(k == &prefix || k.starts_with(&format!("{prefix}/"))));
            if stored.is_some() {
                model.retain(|k, _| !prefix.starts_with(&format!("{k}/")));
            }
            if let Some(v) = &stored {
                leaves(&prefix, v, &mut model);
            }
            tree::set(&mut root, &path, stored);
            let mut actual = BTreeMap::new();
            leaves("", &root, &mut actual);
            prop_assert_eq!(&actual, &model);
        }
    }

    /// Dense arrays of non-null scalars come back as the same arrays.
    #[test]
    fn arrays_round_trip(items in prop::collection::vec(scalar(), 1..20)) {
        let stored = tree::normalize(Value::Array(items.clone()), 0).unwrap().unwrap();
        prop_assert_eq!(tree::render(&stored), Value::Array(items));
    }

    /// Serialising in place (what answers use) gives exactly the rendered copy's text, and
    /// `set` hands back what it replaced.
    #[test]
    fn rendering_in_place_matches_the_copy(value in json_value(), path in small_path()) {
        let Ok(Some(stored)) = tree::normalize(value, 0) else { return Ok(()) };
        prop_assert_eq!(
            serde_json::to_string(&tree::Rendered(&stored)).unwrap(),
            tree::render(&stored).to_string()
        );
        let mut root = stored.clone();
        let before = tree::get(&root, &path).cloned();
        let replaced = tree::set(&mut root, &path, Some(Value::Bool(true)));
        prop_assert_eq!(replaced, before);
    }

    /// A filter returns a subset of the children, within its limit and range.
    #[test]
    fn filters_return_bounded_subsets(
        children in prop::collection::btree_map("[a-e]{1,2}", scalar(), 0..12),
        limit in 1usize..6,
        start in "[a-e]{1,2}",
    ) {
        let data = Value::Object(children.clone().into_iter().collect());
        let q = format!("orderBy=%22%24key%22&startAt=%22{start}%22&limitToFirst={limit}");
        let out = Params::parse(Some(&q)).unwrap().filter.unwrap().apply(&data);
        let kept = out.as_object().cloned().unwrap_or_default();
        prop_assert!(kept.len() <= limit);
        for (k, v) in &kept {
            prop_assert_eq!(children.get(k), Some(v));
            prop_assert!(compare_keys(k, &start) != std::cmp::Ordering::Less);
        }
        let eligible = children.keys().filter(|k| compare_keys(k, &start) != std::cmp::Ordering::Less).count();
        prop_assert_eq!(kept.len(), eligible.min(limit));
    }

    /// A logged value replays as the stored value it was, whether the record holds it in output
    /// form (as written now) or in stored form (as logs written before hold it).
    #[test]
    fn logged_values_replay_as_stored(value in json_value(), path in small_path()) {
        let Ok(Some(stored)) = tree::normalize(value, path.len()) else { return Ok(()) };
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("log");
        let mut w = log::LogWriter::create(&file).unwrap();
        let mut buf = Vec::new();
        log::encode(&[(path.clone(), Some(stored.clone()))], &mut buf);
        // The same change as the old encoder wrote it: the stored form itself.
        let old = serde_json::to_vec(&[(path.to_string(), &stored)]).unwrap();
        buf.extend_from_slice(&(old.len() as u32).to_le_bytes());
        buf.extend_from_slice(&crc32fast::hash(&old).to_le_bytes());
        buf.extend_from_slice(&old);
        w.append_durable(&buf).unwrap();
        drop(w);
        let replay = log::replay(&file).unwrap();
        prop_assert_eq!(replay.records.len(), 2);
        for rec in &replay.records {
            prop_assert_eq!(&rec[0].0, &path);
            prop_assert_eq!(rec[0].1.as_ref(), Some(&stored));
        }
    }

    /// Cutting the log at any byte leaves a clean prefix of the records: never an error, never a
    /// record that was not written.
    #[test]
    fn log_truncated_anywhere_replays_a_prefix(
        values in prop::collection::vec(scalar(), 1..8),
        cut_fraction in 0.0f64..1.0,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut w = log::LogWriter::create(&path).unwrap();
        for (i, v) in values.iter().enumerate() {
            let mut buf = Vec::new();
            log::encode(&[(DbPath::parse(&format!("/k{i}")).unwrap(), Some(v.clone()))], &mut buf);
            w.append_durable(&buf).unwrap();
        }
        drop(w);
        let full = std::fs::read(&path).unwrap();
        let cut = ((full.len() as f64) * cut_fraction) as usize;
        std::fs::write(&path, &full[..cut]).unwrap();
        let replay = log::replay(&path).unwrap();
        prop_assert!(replay.records.len() <= values.len());
        for (i, rec) in replay.records.iter().enumerate() {
            prop_assert_eq!(rec[0].1.as_ref(), Some(&values[i]));
        }
    }
}
