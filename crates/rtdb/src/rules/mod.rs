//! Security rules: Firebase's rules language as huddle-db enforces it, so the rules file Huddle
//! ships for real Firebase guards the embedded server the same way.
//!
//! Supported: nested rule objects with `$wildcard` children; `.read`, `.write` and `.validate` as
//! booleans or expressions; `.indexOn`. Expressions have JavaScript's operators (`!`, `&&`, `||`,
//! `==`/`===`, `!=`/`!==`, `<`, `<=`, `>`, `>=`, `+ - * / %`, `?:`, parentheses), string, number,
//! boolean and null literals, `auth` (`auth.uid`, `auth.provider`, `auth.token.*`), `$wildcards`,
//! `now`, and the snapshots `data`, `newData` and `root` with `.val()`, `.child()`, `.parent()`,
//! `.exists()`, `.hasChild()`, `.hasChildren([..])`, `.isString()`, `.isNumber()`, `.isBoolean()`;
//! strings have `.length`, `.contains()`, `.beginsWith()`, `.endsWith()`, `.matches(/re/i)`,
//! `.toLowerCase()`, `.toUpperCase()`. Anything else is refused when the rules are loaded, naming
//! the rule and the part, so a rules file never means less than it says.
//!
//! Semantics are Firebase's: `.read`/`.write` cascade (any grant from the root down to a location
//! allows, and cannot be taken back deeper); `.validate` does not cascade: every one at and above
//! the written location and on every node of the new data must pass, where the new data is not
//! null. `newData` is the whole database after the whole write (all paths of a multi-path update,
//! server values resolved); `data` and `root` are before it. A rule whose evaluation fails (a
//! method on null, comparing a string with a number) is false. A query ordered by a child needs
//! that child in the location's `.indexOn`, as on Firebase.
//!
//! Parsing lives in [`parse`], the expressions and their evaluation in [`expr`], and the
//! snapshots over "stored tree + pending write" (which copy nothing) in [`snapshot`].

mod expr;
mod parse;
pub mod snapshot;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};

use serde_json::{Map, Value};

use crate::path::DbPath;
use expr::{Ctx, Expr};
use snapshot::{Loc, Snapshot, View};

/// Who is asking, as the rules see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// Bypasses the rules (holds the database secret, or `Bearer owner` on an open server).
    Admin,
    /// `auth` is null.
    Anonymous,
    /// A signed-in user, or an admin acting as one with `auth_variable_override`.
    User(Identity),
}

/// What the rules see as `auth` for a signed-in caller: `auth.uid`, `auth.provider` and
/// `auth.token` (the ID token's claims), as Firebase gives them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub uid: String,
    /// The sign-in method, e.g. `anonymous`; `custom` for an admin's override, as on Firebase.
    pub provider: String,
    /// The token's claims (`sub`, `iat`, `exp`, `firebase.sign_in_provider`, ...); an override
    /// carries the object it was given.
    pub token: serde_json::Map<String, Value>,
}

impl Identity {
    /// The identity an admin's `auth_variable_override` object describes.
    pub fn from_override(uid: &str, object: serde_json::Map<String, Value>) -> Self {
        Identity {
            uid: uid.to_owned(),
            provider: "custom".to_owned(),
            token: object,
        }
    }

    /// A user known only by uid (tests, tools).
    pub fn uid(uid: &str) -> Self {
        Self::from_override(uid, serde_json::Map::new())
    }
}

impl Caller {
    /// The signed-in user's uid, if any.
    pub fn uid(&self) -> Option<&str> {
        match self {
            Caller::User(id) => Some(id.uid.as_str()),
            _ => None,
        }
    }
}

/// A parsed rules tree.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    root: Node,
    source: Value,
    /// False only for [`Rules::open`], which has no document one could add `.indexOn` to.
    indexes_required: bool,
}

#[derive(Clone, Debug, Default)]
struct Node {
    read: Option<Expr>,
    write: Option<Expr>,
    validate: Option<Expr>,
    index_on: Vec<String>,
    children: BTreeMap<String, Node>,
    wildcard: Option<(String, Box<Node>)>,
}

impl Node {
    /// The rules for child `key`, binding the wildcard's name if that is what matched.
    fn step<'n>(&'n self, key: &str, vars: &mut Vec<(String, String)>) -> Option<&'n Node> {
        if let Some(child) = self.children.get(key) {
            return Some(child);
        }
        let (name, child) = self.wildcard.as_ref()?;
        vars.push((name.clone(), key.to_owned()));
        Some(child)
    }
}

/// Why a rules document was refused.
#[derive(Debug, thiserror::Error)]
#[error("invalid rules: {0}")]
pub struct RulesError(String);

impl Rules {
    /// Everything allowed to everyone: the default of an open server with no rules file.
    pub fn open() -> Self {
        let mut rules = Self::parse(&serde_json::json!({"rules": {".read": true, ".write": true}}))
            .unwrap_or_default();
        rules.indexes_required = false;
        rules
    }

    /// Parses a rules document `{"rules": {...}}`.
    pub fn parse(doc: &Value) -> Result<Self, RulesError> {
        let rules = doc
            .get("rules")
            .and_then(Value::as_object)
            .ok_or_else(|| RulesError("the document must be {\"rules\": {...}}".into()))?;
        Ok(Rules {
            root: parse_node(rules, "/", &mut Vec::new())?,
            source: doc.clone(),
            indexes_required: true,
        })
    }

    /// The document as it was given.
    pub fn source(&self) -> &Value {
        &self.source
    }

    /// May `caller` read `path` of the database `root`? `now` is the server clock in ms.
    pub fn can_read(&self, caller: &Caller, path: &DbPath, root: &Value, now: u64) -> bool {
        if *caller == Caller::Admin {
            return true;
        }
        let auth = auth_value(caller);
        let view = View::current(root);
        let mut vars = Vec::new();
        let mut node = &self.root;
        let mut depth = 0;
        loop {
            if let Some(rule) = &node.read {
                let ctx = Ctx {
                    auth: &auth,
                    vars: &vars,
                    data: Snapshot::new(view, loc(&path.segments()[..depth])),
                    new_data: None,
                    root: view,
                    now,
                };
                if rule.allows(&ctx) {
                    return true;
                }
            }
            let Some(seg) = path.segments().get(depth) else {
                return false;
            };
            let Some(next) = node.step(seg, &mut vars) else {
                return false;
            };
            node = next;
            depth += 1;
        }
    }

    /// May `caller` make the write `sets` (stored form, server values resolved, no two nested)
    /// to the database `root`? Every set must be allowed by some `.write` on its way down, and
    /// every `.validate` that the new data reaches must pass, all judged on the combined result.
    pub fn can_write(
        &self,
        caller: &Caller,
        root: &Value,
        sets: &[(DbPath, Option<Value>)],
        now: u64,
    ) -> bool {
        if *caller == Caller::Admin {
            return true;
        }
        let auth = auth_value(caller);
        let old = View::current(root);
        let new = View::after(root, sets);
        let eval = |rule: &Expr, vars: &[(String, String)], at: &[Cow<'_, str>]| {
            rule.allows(&Ctx {
                auth: &auth,
                vars,
                data: Snapshot::new(old, at.to_vec()),
                new_data: Some(Snapshot::new(new, at.to_vec())),
                root: old,
                now,
            })
        };
        let mut validated: HashSet<&[String]> = HashSet::new();
        for (path, value) in sets {
            let mut vars = Vec::new();
            let mut node = Some(&self.root);
            let mut granted = false;
            // The ancestors' (and the location's own) rules.
            for depth in 0..=path.len() {
                let Some(n) = node else { break };
                let at = loc(&path.segments()[..depth]);
                granted = granted || n.write.as_ref().is_some_and(|r| eval(r, &vars, &at));
                if let Some(rule) = &n.validate {
                    let fresh = depth < path.len() && validated.insert(&path.segments()[..depth]);
                    if (fresh || depth == path.len()) && new.exists(&at) && !eval(rule, &vars, &at)
                    {
                        return false;
                    }
                }
                if let Some(seg) = path.segments().get(depth) {
                    node = n.step(seg, &mut vars);
                }
            }
            if !granted {
                return false;
            }
            // Every node of the new data below the location.
            if let (Some(n), Some(v)) = (node, value) {
                if !validate_below(n, v, &mut loc(path.segments()), &mut vars, &eval) {
                    return false;
                }
            }
        }
        true
    }

    /// Could any write by `caller` at `path` (and, when `below`, anywhere under it, as a PATCH
    /// or a push reaches) be granted, whatever its data? False only when every `.write` that
    /// could grant it is decided false for this caller (see [`Expr::decided`]): then the write
    /// can be refused before its body is read, so a caller who may not write cannot make the
    /// server buffer and parse megabytes first. The full check still runs on every write.
    pub fn may_ever_write(&self, caller: &Caller, path: &DbPath, below: bool) -> bool {
        if *caller == Caller::Admin {
            return true;
        }
        let auth = auth_value(caller);
        let possible = |n: &Node, vars: &[(String, String)]| {
            n.write
                .as_ref()
                .is_some_and(|r| r.decided(&auth, vars) != Some(false))
        };
        let mut vars = Vec::new();
        let mut node = &self.root;
        for depth in 0..=path.len() {
            if possible(node, &vars) {
                return true;
            }
            let Some(seg) = path.segments().get(depth) else {
                break;
            };
            let Some(next) = node.step(seg, &mut vars) else {
                // No rules below: nothing can grant a write there.
                return false;
            };
            node = next;
        }
        below && any_below(node, &mut vars, &possible)
    }

    /// Whether a query at `path` may order by the child `field`: Firebase wants it indexed.
    /// The error is Firebase's own words.
    pub fn check_index(&self, path: &DbPath, field: &DbPath) -> Result<(), String> {
        if !self.indexes_required {
            return Ok(());
        }
        let name = field.segments().join("/");
        let mut node = Some(&self.root);
        for seg in path.segments() {
            node = node.and_then(|n| n.step(seg, &mut Vec::new()));
        }
        if node.is_some_and(|n| n.index_on.contains(&name)) {
            return Ok(());
        }
        Err(format!(
            "Index not defined, add \".indexOn\": \"{name}\", for path \"{path}\", to the rules"
        ))
    }
}

/// `.validate` of each child of `value` (the new data at `at`) and below, depth first.
fn validate_below<'v>(
    node: &Node,
    value: &'v Value,
    at: &mut Loc<'v>,
    vars: &mut Vec<(String, String)>,
    eval: &impl Fn(&Expr, &[(String, String)], &[Cow<'_, str>]) -> bool,
) -> bool {
    let Value::Object(map) = value else {
        return true;
    };
    for (key, child_value) in map {
        let bound = vars.len();
        let Some(child) = node.step(key, vars) else {
            continue;
        };
        at.push(Cow::Borrowed(key));
        let ok = child.validate.as_ref().is_none_or(|r| eval(r, vars, at))
            && validate_below(child, child_value, at, vars, eval);
        at.pop();
        vars.truncate(bound);
        if !ok {
            return false;
        }
    }
    true
}

/// Whether some node under `node` has a `.write` that `possible` accepts; a wildcard's variable
/// is unbound there (its key is not known yet), so rules that use it stay undecided.
fn any_below(
    node: &Node,
    vars: &mut Vec<(String, String)>,
    possible: &impl Fn(&Node, &[(String, String)]) -> bool,
) -> bool {
    let mut children: Vec<&Node> = node.children.values().collect();
    if let Some((_, wild)) = &node.wildcard {
        children.push(wild);
    }
    children
        .into_iter()
        .any(|child| possible(child, vars) || any_below(child, vars, possible))
}

fn loc(segs: &[String]) -> Loc<'_> {
    segs.iter().map(|s| Cow::Borrowed(s.as_str())).collect()
}

/// `auth` as the rules see it.
fn auth_value(caller: &Caller) -> Value {
    match caller {
        Caller::User(id) => serde_json::json!({
            "uid": id.uid,
            "provider": id.provider,
            "token": id.token,
        }),
        _ => Value::Null,
    }
}

fn parse_node(
    map: &Map<String, Value>,
    at: &str,
    vars: &mut Vec<String>,
) -> Result<Node, RulesError> {
    let mut node = Node::default();
    for (key, value) in map {
        match key.as_str() {
            ".read" => node.read = Some(parse_rule(value, at, ".read", vars)?),
            ".write" => node.write = Some(parse_rule(value, at, ".write", vars)?),
            ".validate" => node.validate = Some(parse_rule(value, at, ".validate", vars)?),
            ".indexOn" => {
                node.index_on = match value {
                    Value::String(s) => vec![s.clone()],
                    Value::Array(items) => items
                        .iter()
                        .map(|i| i.as_str().map(str::to_owned))
                        .collect::<Option<_>>()
                        .ok_or_else(|| {
                            RulesError(format!(
                                "{at}.indexOn must be a string or a list of strings"
                            ))
                        })?,
                    _ => {
                        return Err(RulesError(format!(
                            "{at}.indexOn must be a string or a list of strings"
                        )))
                    }
                }
            }
            k if k.starts_with('.') => return Err(RulesError(format!("unknown rule {k} at {at}"))),
            k => {
                let obj = value
                    .as_object()
                    .ok_or_else(|| RulesError(format!("{at}{k} must be an object of rules")))?;
                let is_var = k.starts_with('$');
                if is_var {
                    vars.push(k.to_owned());
                }
                let child = parse_node(obj, &format!("{at}{k}/"), vars);
                if is_var {
                    vars.pop();
                }
                let child = child?;
                if is_var {
                    if node.wildcard.is_some() {
                        return Err(RulesError(format!("two $wildcards at {at}")));
                    }
                    node.wildcard = Some((k.to_owned(), Box::new(child)));
                } else {
                    node.children.insert(k.to_owned(), child);
                }
            }
        }
    }
    Ok(node)
}

fn parse_rule(value: &Value, at: &str, kind: &str, vars: &[String]) -> Result<Expr, RulesError> {
    let text = match value {
        Value::Bool(b) => return Ok(Expr::Bool(*b)),
        Value::String(s) => s.as_str(),
        _ => {
            return Err(RulesError(format!(
                "{at}{kind} must be a boolean or a string"
            )))
        }
    };
    let scope = parse::Scope {
        vars,
        has_new_data: kind != ".read",
    };
    parse::parse(text, &scope)
        .map_err(|why| RulesError(format!("{at}{kind} {text:?} is not supported: {why}")))
}
