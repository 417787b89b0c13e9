//! The data hash of the realtime protocol: what a client sends as `h` with a conditional put
//! (the SDK's transactions) and the server compares with the hash of what it holds. It must be
//! the SDKs' exact function (`LeafNode.hash`, `ChildrenNode.hash`): a base64 SHA-1 over
//! `type:value` for a leaf, `:key:childHash` per child in key order for an object, and the
//! empty string for nothing. This server stores no priorities, so none enter the hash.

use base64::Engine;
use serde_json::Value;
use sha1::{Digest, Sha1};

use crate::query::compare_keys;

/// The hash of `value` (`None`: absent, the empty string).
pub fn hash(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(v) => node_hash(v),
    }
}

fn node_hash(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(b) => sha1_b64(&format!("boolean:{b}")),
        Value::Number(n) => sha1_b64(&format!(
            "number:{}",
            double_to_ieee754_string(n.as_f64().unwrap_or(0.0))
        )),
        Value::String(s) => sha1_b64(&format!("string:{s}")),
        Value::Array(items) => {
            let keys: Vec<(String, &Value)> = items
                .iter()
                .enumerate()
                .map(|(i, v)| (i.to_string(), v))
                .collect();
            children_hash(keys)
        }
        Value::Object(map) => children_hash(map.iter().map(|(k, v)| (k.clone(), v)).collect()),
    }
}

fn children_hash(mut kids: Vec<(String, &Value)>) -> String {
    kids.sort_by(|a, b| compare_keys(&a.0, &b.0));
    let mut to_hash = String::new();
    for (key, child) in kids {
        let h = node_hash(child);
        if !h.is_empty() {
            to_hash.push(':');
            to_hash.push_str(&key);
            to_hash.push(':');
            to_hash.push_str(&h);
        }
    }
    if to_hash.is_empty() {
        String::new()
    } else {
        sha1_b64(&to_hash)
    }
}

fn sha1_b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha1::digest(text.as_bytes()))
}

/// The SDK's `doubleToIEEE754String`, step by step as it computes it (the exponent from a
/// logarithm, not from the bits), so that a number hashes here as it hashes there.
pub fn double_to_ieee754_string(v: f64) -> String {
    const EBITS: i32 = 11;
    const FBITS: i32 = 52;
    let bias: i32 = (1 << (EBITS - 1)) - 1;
    let (sign, e, f): (bool, i64, f64);
    if v == 0.0 {
        sign = v.is_sign_negative();
        e = 0;
        f = 0.0;
    } else {
        sign = v < 0.0;
        let a = v.abs();
        if a >= pow2(1 - bias) {
            let ln = ((a.ln() / std::f64::consts::LN_2).floor() as i32).min(bias);
            e = i64::from(ln + bias);
            f = (a * pow2(FBITS - ln) - pow2(FBITS)).round();
        } else {
            e = 0;
            f = (a / pow2(1 - bias - FBITS)).round();
        }
    }
    // The SDK keeps the low 52 bits of the fraction and the low 11 of the exponent.
    let frac = (f.max(0.0) as u64) & ((1u64 << FBITS) - 1);
    let bits = (u64::from(sign) << 63) | (((e as u64) & 0x7ff) << FBITS) | frac;
    format!("{bits:016x}")
}

/// 2^i exactly, as JavaScript's `Math.pow(2, i)` gives it (subnormal and infinite ends too).
fn pow2(i: i32) -> f64 {
    match i {
        i if i > 1023 => f64::INFINITY,
        i if i >= -1022 => f64::from_bits(((i + 1023) as u64) << 52),
        i if i >= -1074 => f64::from_bits(1u64 << (i + 1074)),
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_encode_as_their_ieee754_bits() {
        for v in [
            1.0,
            -2.5,
            0.1,
            1e300,
            5e-324,
            1e-310,
            123456789.0,
            2f64.powi(40),
            8.0,
        ] {
            assert_eq!(
                double_to_ieee754_string(v),
                format!("{:016x}", v.to_bits()),
                "{v}"
            );
        }
        assert_eq!(double_to_ieee754_string(0.0), "0000000000000000");
        assert_eq!(double_to_ieee754_string(-0.0), "8000000000000000");
    }

    #[test]
    fn hashes_match_the_sdk() {
        // The definition spelled out; the SDK tests (transactions under contention) check it
        // against the SDK itself.
        assert_eq!(hash(None), "");
        assert_eq!(hash(Some(&json!({}))), "");
        assert_eq!(hash(Some(&json!({"a": null}))), "");
        // sha1("string:hello"), sha1("number:3ff0000000000000"), sha1("boolean:true").
        assert_eq!(hash(Some(&json!("hello"))), sha1_b64("string:hello"));
        assert_eq!(hash(Some(&json!(1))), sha1_b64("number:3ff0000000000000"));
        assert_eq!(hash(Some(&json!(1.0))), hash(Some(&json!(1))));
        assert_eq!(hash(Some(&json!(true))), sha1_b64("boolean:true"));
        // Children in Firebase key order: integer keys first, numerically.
        let v = json!({"b": 1, "10": 2, "2": 3});
        let expect = sha1_b64(&format!(
            ":2:{}:10:{}:b:{}",
            hash(Some(&json!(3))),
            hash(Some(&json!(2))),
            hash(Some(&json!(1)))
        ));
        assert_eq!(hash(Some(&v)), expect);
        assert_eq!(
            hash(Some(&json!([5, 6]))),
            hash(Some(&json!({"0": 5, "1": 6})))
        );
    }
}
