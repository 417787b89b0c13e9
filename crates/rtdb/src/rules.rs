//! Security rules: the `.read` / `.write` part of Firebase's rules language that huddle-db
//! enforces, so the rules file Huddle ships for real Firebase also guards the embedded server.
//!
//! Supported: nested rule objects with `$wildcard` children; `.read`/`.write` as booleans or as
//! expressions made of `true`, `false`, `auth != null`, `auth == null`, `auth.uid == $var` (or
//! `===`, `!=`, `!==`), joined with `&&` and `||` (no parentheses). Grants cascade downwards and
//! cannot be revoked deeper, as in Firebase. `.validate` and `.indexOn` are accepted and ignored
//! (a query needs no index here). Anything else is refused when the rules are loaded, so a rules
//! file never means less than it says.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::path::DbPath;

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
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rules {
    root: Node,
    source: Value,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct Node {
    read: Option<Expr>,
    write: Option<Expr>,
    children: BTreeMap<String, Node>,
    wildcard: Option<(String, Box<Node>)>,
}

/// `a && b || c && d` as a disjunction of conjunctions.
#[derive(Clone, Debug, PartialEq)]
struct Expr(Vec<Vec<Atom>>);

#[derive(Clone, Debug, PartialEq)]
enum Atom {
    Const(bool),
    AuthIsNull(bool),
    UidEquals { var: String, negated: bool },
}

/// Why a rules document was refused.
#[derive(Debug, thiserror::Error)]
#[error("invalid rules: {0}")]
pub struct RulesError(String);

impl Rules {
    /// Everything allowed to everyone: the default of an open server with no rules file.
    pub fn open() -> Self {
        Self::parse(&serde_json::json!({"rules": {".read": true, ".write": true}}))
            .unwrap_or_default()
    }

    /// Parses a rules document `{"rules": {...}}`.
    pub fn parse(doc: &Value) -> Result<Self, RulesError> {
        let rules = doc
            .get("rules")
            .and_then(Value::as_object)
            .ok_or_else(|| RulesError("the document must be {\"rules\": {...}}".into()))?;
        Ok(Rules {
            root: parse_node(rules, "/")?,
            source: doc.clone(),
        })
    }

    /// The document as it was given.
    pub fn source(&self) -> &Value {
        &self.source
    }

    /// May `caller` read `path`?
    pub fn can_read(&self, caller: &Caller, path: &DbPath) -> bool {
        self.grants(caller, path, |n| n.read.as_ref())
    }

    /// May `caller` write at `path`?
    pub fn can_write(&self, caller: &Caller, path: &DbPath) -> bool {
        self.grants(caller, path, |n| n.write.as_ref())
    }

    fn grants(
        &self,
        caller: &Caller,
        path: &DbPath,
        pick: impl Fn(&Node) -> Option<&Expr>,
    ) -> bool {
        if *caller == Caller::Admin {
            return true;
        }
        let mut vars: Vec<(String, String)> = Vec::new();
        let mut node = &self.root;
        if pick(node).is_some_and(|e| e.eval(caller, &vars)) {
            return true;
        }
        for seg in path.segments() {
            let next = if let Some(child) = node.children.get(seg) {
                child
            } else if let Some((name, child)) = &node.wildcard {
                vars.push((name.clone(), seg.clone()));
                child
            } else {
                return false;
            };
            node = next;
            if pick(node).is_some_and(|e| e.eval(caller, &vars)) {
                return true;
            }
        }
        false
    }
}

fn parse_node(map: &Map<String, Value>, at: &str) -> Result<Node, RulesError> {
    let mut node = Node::default();
    for (key, value) in map {
        match key.as_str() {
            ".read" => node.read = Some(parse_expr(value, at)?),
            ".write" => node.write = Some(parse_expr(value, at)?),
            ".validate" | ".indexOn" => {}
            k if k.starts_with('.') => return Err(RulesError(format!("unknown rule {k} at {at}"))),
            k => {
                let obj = value
                    .as_object()
                    .ok_or_else(|| RulesError(format!("{at}{k} must be an object of rules")))?;
                let child = parse_node(obj, &format!("{at}{k}/"))?;
                if let Some(var) = k.strip_prefix('$') {
                    if node.wildcard.is_some() {
                        return Err(RulesError(format!("two $wildcards at {at}")));
                    }
                    node.wildcard = Some((format!("${var}"), Box::new(child)));
                } else {
                    node.children.insert(k.to_owned(), child);
                }
            }
        }
    }
    Ok(node)
}

fn parse_expr(value: &Value, at: &str) -> Result<Expr, RulesError> {
    let text = match value {
        Value::Bool(b) => return Ok(Expr(vec![vec![Atom::Const(*b)]])),
        Value::String(s) => s.as_str(),
        _ => {
            return Err(RulesError(format!(
                "a rule at {at} must be a boolean or a string"
            )))
        }
    };
    let disjuncts = text
        .split("||")
        .map(|conj| {
            conj.split("&&")
                .map(|atom| parse_atom(atom.trim(), at))
                .collect::<Result<Vec<_>, _>>()
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Expr(disjuncts))
}

fn parse_atom(atom: &str, at: &str) -> Result<Atom, RulesError> {
    let compact: String = atom.split_whitespace().collect();
    let unsupported = || RulesError(format!("unsupported rule expression {atom:?} at {at}"));
    match compact.as_str() {
        "true" => return Ok(Atom::Const(true)),
        "false" => return Ok(Atom::Const(false)),
        "auth!=null" | "auth!==null" => return Ok(Atom::AuthIsNull(false)),
        "auth==null" | "auth===null" => return Ok(Atom::AuthIsNull(true)),
        _ => {}
    }
    for (op, negated) in [("!==", true), ("===", false), ("!=", true), ("==", false)] {
        if let Some((lhs, rhs)) = compact.split_once(op) {
            let var = match (lhs, rhs) {
                ("auth.uid", v) | (v, "auth.uid") if v.starts_with('$') => v,
                _ => return Err(unsupported()),
            };
            return Ok(Atom::UidEquals {
                var: var.to_owned(),
                negated,
            });
        }
    }
    Err(unsupported())
}

impl Expr {
    fn eval(&self, caller: &Caller, vars: &[(String, String)]) -> bool {
        self.0
            .iter()
            .any(|conj| conj.iter().all(|a| a.eval(caller, vars)))
    }
}

impl Atom {
    fn eval(&self, caller: &Caller, vars: &[(String, String)]) -> bool {
        match self {
            Atom::Const(b) => *b,
            Atom::AuthIsNull(is_null) => (*caller == Caller::Anonymous) == *is_null,
            Atom::UidEquals { var, negated } => {
                let uid = caller.uid();
                // A variable not bound on this path never matches (Firebase would refuse the rule).
                let bound = vars
                    .iter()
                    .rev()
                    .find(|(n, _)| n == var)
                    .map(|(_, v)| v.as_str());
                let equal = uid.is_some() && uid == bound;
                equal != *negated
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &str) -> DbPath {
        DbPath::parse(s).unwrap()
    }

    #[test]
    fn capability_paths_readable_but_not_listable() {
        let rules = Rules::parse(&json!({"rules": {
            "rooms": {".read": true, ".write": true},
            "private": {"$cap": {".read": true, ".write": true}}
        }}))
        .unwrap();
        let anon = Caller::Anonymous;
        assert!(rules.can_read(&anon, &p("/rooms/x")));
        assert!(!rules.can_read(&anon, &p("/private")));
        assert!(!rules.can_read(&anon, &p("/")));
        assert!(rules.can_read(&anon, &p("/private/abc/offers")));
        assert!(!rules.can_write(&anon, &p("/private")));
        assert!(rules.can_read(&Caller::Admin, &p("/private")));
    }

    #[test]
    fn expressions_with_auth_and_wildcards() {
        let rules = Rules::parse(&json!({"rules": {
            "users": {"$uid": {".write": "auth != null && auth.uid === $uid", ".read": "auth != null"}}
        }}))
        .unwrap();
        let alice = Caller::User(Identity::uid("alice"));
        assert!(rules.can_write(&alice, &p("/users/alice/name")));
        assert!(!rules.can_write(&alice, &p("/users/bob")));
        assert!(!rules.can_write(&Caller::Anonymous, &p("/users/alice")));
        assert!(rules.can_read(&alice, &p("/users/bob")));
    }

    #[test]
    fn unsupported_rules_are_refused() {
        assert!(Rules::parse(&json!({"rules": {".read": "root.child('x').exists()"}})).is_err());
        assert!(Rules::parse(&json!({"rules": {".frobnicate": true}})).is_err());
        assert!(Rules::parse(&json!({"nope": {}})).is_err());
        assert!(Rules::parse(
            &json!({"rules": {".read": true, ".validate": "newData.isString()"}})
        )
        .is_ok());
    }
}
