//! Query parameters (`orderBy`, `startAt`, `limitToFirst`, `shallow`, `print`, ...) and Firebase's
//! ordering rules for keys and values.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use crate::error::DbError;
use crate::path::DbPath;

/// What the children of a location are ordered by.
#[derive(Clone, Debug, PartialEq)]
pub enum OrderBy {
    /// `"$key"`.
    Key,
    /// `"$value"`.
    Value,
    /// `"$priority"`: this server stores no priorities, so all are null and ties go by key.
    Priority,
    /// `"child/path"`.
    Child(DbPath),
}

/// How the answer body is printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Print {
    #[default]
    Normal,
    Pretty,
    /// No body: writes answer 204.
    Silent,
}

/// Every query parameter a REST or streaming request can carry.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Params {
    /// `auth=` or `access_token=`.
    pub auth: Option<String>,
    /// `auth_variable_override=` (admin only).
    pub auth_override: Option<String>,
    /// `print=`.
    pub print: Print,
    /// `shallow=true`.
    pub shallow: bool,
    /// `format=export` (the same as the plain value here: no priorities are stored).
    pub export: bool,
    /// The filter, when there is one.
    pub filter: Option<Filter>,
}

/// `orderBy` and the range and limit parameters that need it.
#[derive(Clone, Debug, PartialEq)]
pub struct Filter {
    /// Ordering of the children.
    pub order_by: OrderBy,
    /// Lower bound, inclusive.
    pub start_at: Option<Value>,
    /// Upper bound, inclusive.
    pub end_at: Option<Value>,
    /// Keep the first n children after ordering.
    pub limit_first: Option<usize>,
    /// Keep the last n children after ordering.
    pub limit_last: Option<usize>,
    /// The key that breaks a tie with `start_at` (realtime queries: `startAt(value, key)`);
    /// [`MIN_NAME`] / [`MAX_NAME`] sort before / after every key.
    pub start_name: Option<String>,
    /// The same for `end_at`.
    pub end_name: Option<String>,
    /// False for `startAfter`: the bound itself is out.
    pub start_inclusive: bool,
    /// False for `endBefore`.
    pub end_inclusive: bool,
}

/// The name before every key (the SDKs' `[MIN_NAME]`).
pub const MIN_NAME: &str = "[MIN_NAME]";
/// The name after every key (the SDKs' `[MAX_NAME]`).
pub const MAX_NAME: &str = "[MAX_NAME]";

impl Filter {
    /// A filter ordered by `order_by` with no bounds or limits.
    pub fn ordered_by(order_by: OrderBy) -> Self {
        Filter {
            order_by,
            start_at: None,
            end_at: None,
            limit_first: None,
            limit_last: None,
            start_name: None,
            end_name: None,
            start_inclusive: true,
            end_inclusive: true,
        }
    }
}

impl Params {
    /// Parses a raw query string (`a=1&b=2`); unknown parameters are ignored, as Firebase does.
    pub fn parse(raw: Option<&str>) -> Result<Self, DbError> {
        let mut params = Params::default();
        let mut order_by = None;
        let (mut start_at, mut end_at, mut equal_to) = (None, None, None);
        let (mut first, mut last) = (None, None);
        for (key, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            match key.as_ref() {
                "auth" | "access_token" => params.auth = Some(value.into_owned()),
                "auth_variable_override" => params.auth_override = Some(value.into_owned()),
                "print" => {
                    params.print = match value.as_ref() {
                        "pretty" => Print::Pretty,
                        "silent" => Print::Silent,
                        _ => return Err(bad("print must be either 'pretty' or 'silent'")),
                    }
                }
                "shallow" => params.shallow = parse_bool(&value, "shallow")?,
                "format" => {
                    if value != "export" {
                        return Err(bad("format must be 'export'"));
                    }
                    params.export = true;
                }
                "orderBy" => order_by = Some(parse_order_by(&value)?),
                "startAt" => start_at = Some(parse_json(&value, "startAt")?),
                "endAt" => end_at = Some(parse_json(&value, "endAt")?),
                "equalTo" => equal_to = Some(parse_json(&value, "equalTo")?),
                "limitToFirst" => first = Some(parse_limit(&value, "limitToFirst")?),
                "limitToLast" => last = Some(parse_limit(&value, "limitToLast")?),
                _ => {}
            }
        }
        let any_filter = start_at.is_some()
            || end_at.is_some()
            || equal_to.is_some()
            || first.is_some()
            || last.is_some();
        let Some(order_by) = order_by else {
            if any_filter {
                return Err(bad(
                    "orderBy must be defined when other query parameters are defined",
                ));
            }
            return Ok(params);
        };
        if params.shallow {
            return Err(bad(
                "Mixing 'shallow' and querying parameters is not supported",
            ));
        }
        if first.is_some() && last.is_some() {
            return Err(bad(
                "Only one of limitToFirst and limitToLast may be specified",
            ));
        }
        if let Some(eq) = equal_to {
            if start_at.is_some() || end_at.is_some() {
                return Err(bad(
                    "equalTo cannot be specified in addition to startAt or endAt",
                ));
            }
            start_at = Some(eq.clone());
            end_at = Some(eq);
        }
        if order_by == OrderBy::Key {
            for bound in [&start_at, &end_at].into_iter().flatten() {
                if !bound.is_string() {
                    return Err(bad(
                        "When using orderBy \"$key\", startAt, endAt and equalTo must be strings",
                    ));
                }
            }
        }
        for bound in [&start_at, &end_at].into_iter().flatten() {
            if bound.is_object() || bound.is_array() {
                return Err(bad(
                    "startAt, endAt and equalTo must be a string, number, boolean or null",
                ));
            }
        }
        params.filter = Some(Filter {
            start_at,
            end_at,
            limit_first: first,
            limit_last: last,
            ..Filter::ordered_by(order_by)
        });
        Ok(params)
    }
}

fn bad(msg: &str) -> DbError {
    DbError::BadQuery(msg.to_owned())
}

fn parse_bool(value: &str, name: &str) -> Result<bool, DbError> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(DbError::BadQuery(format!(
            "{name} must be either 'true' or 'false'"
        ))),
    }
}

fn parse_json(value: &str, name: &str) -> Result<Value, DbError> {
    serde_json::from_str(value).map_err(|_| {
        DbError::BadQuery(format!(
            "Constraint index field must be a JSON primitive ({name} is not valid JSON)"
        ))
    })
}

fn parse_limit(value: &str, name: &str) -> Result<usize, DbError> {
    match value.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(DbError::BadQuery(format!(
            "{name} must be a positive integer"
        ))),
    }
}

fn parse_order_by(value: &str) -> Result<OrderBy, DbError> {
    let Ok(Value::String(path)) = serde_json::from_str::<Value>(value) else {
        return Err(bad("orderBy must be a valid JSON encoded path"));
    };
    Ok(match path.as_str() {
        "$key" => OrderBy::Key,
        "$value" => OrderBy::Value,
        "$priority" => OrderBy::Priority,
        child => {
            let p = DbPath::parse(child)
                .map_err(|_| bad("orderBy must be a valid JSON encoded path"))?;
            if p.is_empty() {
                return Err(bad("orderBy must be a valid JSON encoded path"));
            }
            OrderBy::Child(p)
        }
    })
}

impl Filter {
    /// No range and no limit: the query keeps every child (it only orders them).
    pub fn is_unbounded(&self) -> bool {
        self.start_at.is_none()
            && self.end_at.is_none()
            && self.limit_first.is_none()
            && self.limit_last.is_none()
    }

    /// The children of `value` that pass the filter, as an object. A non-object is returned as is.
    pub fn apply(&self, value: &Value) -> Value {
        let Value::Object(map) = value else {
            return value.clone();
        };
        let mut kids: Vec<(&String, &Value)> =
            map.iter().filter(|(k, v)| self.in_range(k, v)).collect();
        kids.sort_by(|a, b| self.compare(a, b));
        let kept: &[(&String, &Value)] = match (self.limit_first, self.limit_last) {
            (Some(n), _) => &kids[..n.min(kids.len())],
            (_, Some(n)) => &kids[kids.len().saturating_sub(n)..],
            _ => &kids,
        };
        let out: Map<String, Value> = kept
            .iter()
            .map(|(k, v)| ((*k).clone(), (*v).clone()))
            .collect();
        if out.is_empty() {
            Value::Null
        } else {
            Value::Object(out)
        }
    }

    fn sort_value<'a>(&self, value: &'a Value) -> &'a Value {
        match &self.order_by {
            OrderBy::Value => value,
            OrderBy::Child(path) => crate::tree::get(value, path).unwrap_or(&Value::Null),
            OrderBy::Key | OrderBy::Priority => &Value::Null,
        }
    }

    fn in_range(&self, key: &str, value: &Value) -> bool {
        // Where the child sorts against a bound (and the bound's tie-breaking name).
        let cmp = |bound: &Value, name: &Option<String>| match self.order_by {
            OrderBy::Key => compare_keys(key, bound.as_str().unwrap_or("")),
            _ => compare_values(self.sort_value(value), bound).then_with(|| match name {
                None => Ordering::Equal,
                Some(n) => compare_names(key, n),
            }),
        };
        let after_start = self.start_at.as_ref().is_none_or(|b| {
            let o = cmp(b, &self.start_name);
            o == Ordering::Greater || (o == Ordering::Equal && self.start_inclusive)
        });
        let before_end = self.end_at.as_ref().is_none_or(|b| {
            let o = cmp(b, &self.end_name);
            o == Ordering::Less || (o == Ordering::Equal && self.end_inclusive)
        });
        after_start && before_end
    }

    fn compare(&self, a: &(&String, &Value), b: &(&String, &Value)) -> Ordering {
        let by_value = match self.order_by {
            OrderBy::Key => Ordering::Equal,
            _ => compare_values(self.sort_value(a.1), self.sort_value(b.1)),
        };
        by_value.then_with(|| compare_keys(a.0, b.0))
    }
}

/// [`compare_keys`], with [`MIN_NAME`] and [`MAX_NAME`] at the ends.
fn compare_names(key: &str, name: &str) -> Ordering {
    match name {
        MIN_NAME => Ordering::Greater,
        MAX_NAME => Ordering::Less,
        _ => compare_keys(key, name),
    }
}

/// Firebase's key order: keys that are 32-bit integers first, numerically; then the rest as strings.
pub fn compare_keys(a: &str, b: &str) -> Ordering {
    match (int_key(a), int_key(b)) {
        (Some(x), Some(y)) => x.cmp(&y).then_with(|| a.len().cmp(&b.len())),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// A key that Firebase orders as a number: optional '-', 1 to 10 digits (leading zeros
/// allowed), within the 32-bit signed range.
fn int_key(key: &str) -> Option<i32> {
    let digits = key.strip_prefix('-').unwrap_or(key);
    let significant = digits.trim_start_matches('0');
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || significant.len() > 10 {
        return None;
    }
    key.parse().ok()
}

/// Firebase's value order: null < false < true < numbers < strings < objects.
pub fn compare_values(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Bool(false) => 1,
            Value::Bool(true) => 2,
            Value::Number(_) => 3,
            Value::String(_) => 4,
            Value::Array(_) | Value::Object(_) => 5,
        }
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x.partial_cmp(&y).unwrap_or(Ordering::Equal)
        }
        (Value::String(x), Value::String(y)) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(s: &str) -> Result<Params, DbError> {
        Params::parse(Some(s))
    }

    #[test]
    fn filters_need_order_by() {
        let err = q("limitToFirst=1").unwrap_err();
        assert_eq!(
            err.to_string(),
            "orderBy must be defined when other query parameters are defined"
        );
        let err = q("orderBy=$key").unwrap_err();
        assert_eq!(err.to_string(), "orderBy must be a valid JSON encoded path");
        assert!(q("orderBy=%22%24key%22&limitToFirst=0").is_err());
        assert!(q("orderBy=%22%24key%22&limitToFirst=1&limitToLast=1").is_err());
        assert!(q("orderBy=%22%24key%22&startAt=1").is_err());
        assert!(q("print=loud").is_err());
    }

    #[test]
    fn key_order_puts_integers_first() {
        let mut keys = vec!["b", "10", "a", "2", "-3", "01", "9999999999"];
        keys.sort_by(|a, b| compare_keys(a, b));
        assert_eq!(keys, ["-3", "01", "2", "10", "9999999999", "a", "b"]);
    }

    #[test]
    fn order_by_child_with_range_and_limit() {
        let data = json!({
            "a": {"age": 30}, "b": {"age": 20}, "c": {"age": "x"}, "d": {}, "e": {"age": 25}
        });
        let p = q("orderBy=%22age%22&startAt=21&limitToFirst=2").unwrap();
        let out = p.filter.unwrap().apply(&data);
        assert_eq!(out, json!({"e": {"age": 25}, "a": {"age": 30}}));
        let p = q("orderBy=%22age%22&limitToLast=1").unwrap();
        assert_eq!(p.filter.unwrap().apply(&data), json!({"c": {"age": "x"}}));
        let p = q("orderBy=%22%24value%22&equalTo=true").unwrap();
        assert_eq!(
            p.filter.unwrap().apply(&json!({"x": true, "y": false})),
            json!({"x": true})
        );
    }

    #[test]
    fn order_by_key_range() {
        let p = q("orderBy=%22%24key%22&startAt=%22b%22&endAt=%22c%22").unwrap();
        let out = p
            .filter
            .unwrap()
            .apply(&json!({"a": 1, "b": 2, "c": 3, "d": 4}));
        assert_eq!(out, json!({"b": 2, "c": 3}));
    }
}
