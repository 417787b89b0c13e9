//! Rule expressions and their evaluation.
//!
//! Evaluation is total: anything Firebase would fail at run time (a method on null, `<` between a
//! string and a number, `!` of a non-boolean) is a [`Fault`], and a rule that faults is false,
//! as on Firebase.

use std::borrow::Cow;

use regex::Regex;
use serde_json::Value;

use super::snapshot::{Snapshot, View};

#[derive(Clone, Debug)]
pub enum Expr {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    List(Vec<Expr>),
    /// Only ever the argument of `.matches()`, moved into [`Method::Matches`] by the parser.
    Regex(Regex),
    Global(Global),
    Var(String),
    Member(Box<Expr>, String),
    Call(Box<Expr>, Method, Vec<Expr>),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    Bin(BinOp, Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Cond(Box<Expr>, Box<Expr>, Box<Expr>),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Global {
    Auth,
    Data,
    NewData,
    Root,
    Now,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BinOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

#[derive(Clone, Debug)]
pub enum Method {
    Val,
    Child,
    Parent,
    Exists,
    HasChild,
    HasChildren,
    IsString,
    IsNumber,
    IsBoolean,
    Contains,
    BeginsWith,
    EndsWith,
    Matches(Regex),
    ToLowerCase,
    ToUpperCase,
}

/// Everything a rule can see.
pub struct Ctx<'a> {
    /// `null`, or `{uid, provider, token}`.
    pub auth: &'a Value,
    pub vars: &'a [(String, String)],
    pub data: Snapshot<'a>,
    /// `None` in `.read` rules (the parser refuses `newData` there).
    pub new_data: Option<Snapshot<'a>>,
    pub root: View<'a>,
    pub now: u64,
}

/// A run-time error: the rule that meets one is false.
#[derive(Debug)]
pub struct Fault;

#[derive(Clone, Debug)]
enum V<'a> {
    Null,
    Bool(bool),
    Num(f64),
    Str(Cow<'a, str>),
    /// An object: `auth`, `auth.token`, or what `.val()` gives for a non-leaf.
    Json(Cow<'a, Value>),
    Snap(Snapshot<'a>),
    List(Vec<V<'a>>),
}

fn from_json(v: Cow<'_, Value>) -> V<'_> {
    match v {
        Cow::Borrowed(b) => match b {
            Value::Null => V::Null,
            Value::Bool(x) => V::Bool(*x),
            Value::Number(n) => V::Num(n.as_f64().unwrap_or(f64::NAN)),
            Value::String(s) => V::Str(Cow::Borrowed(s)),
            other => V::Json(Cow::Borrowed(other)),
        },
        Cow::Owned(o) => match o {
            Value::Null => V::Null,
            Value::Bool(x) => V::Bool(x),
            Value::Number(n) => V::Num(n.as_f64().unwrap_or(f64::NAN)),
            Value::String(s) => V::Str(Cow::Owned(s)),
            other => V::Json(Cow::Owned(other)),
        },
    }
}

/// JavaScript's rendering of a number inside a string (`'a' + 1` is `"a1"`, not `"a1.0"`).
fn num_str(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e21 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

impl Expr {
    /// What the expression is for `auth` and the bound `vars` whatever the data: `Some(false)`
    /// when no data could make it true (e.g. `auth != null && ...` for a caller who is not
    /// signed in), `None` when it depends on data. Lets a server refuse a write before it has
    /// read and parsed its body. Only folds what is certain; anything else is unknown.
    pub fn decided(&self, auth: &Value, vars: &[(String, String)]) -> Option<bool> {
        match self {
            Expr::Bool(b) => Some(*b),
            Expr::Not(e) => e.decided(auth, vars).map(|b| !b),
            Expr::And(a, b) => match (a.decided(auth, vars), b.decided(auth, vars)) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            },
            Expr::Or(a, b) => match (a.decided(auth, vars), b.decided(auth, vars)) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            },
            Expr::Bin(op @ (BinOp::Eq | BinOp::Ne), a, b) => {
                let (a, b) = (a.known_value(auth, vars)?, b.known_value(auth, vars)?);
                let equal = match (&a, &b) {
                    (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
                    _ => a == b,
                };
                Some(equal == (*op == BinOp::Eq))
            }
            _ => None,
        }
    }

    /// The value of a literal, a bound `$variable`, `auth` or a field of it; `None` for anything
    /// that reads data (or a field of a missing `auth`, which faults on Firebase).
    fn known_value(&self, auth: &Value, vars: &[(String, String)]) -> Option<Value> {
        match self {
            Expr::Null => Some(Value::Null),
            Expr::Bool(b) => Some(Value::Bool(*b)),
            Expr::Num(n) => serde_json::Number::from_f64(*n).map(Value::Number),
            Expr::Str(s) => Some(Value::String(s.clone())),
            Expr::Var(name) => vars
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, v)| Value::String(v.clone())),
            Expr::Global(Global::Auth) => Some(auth.clone()),
            Expr::Member(base, field) => match base.known_value(auth, vars)? {
                Value::Object(map) => Some(map.get(field).cloned().unwrap_or(Value::Null)),
                _ => None,
            },
            _ => None,
        }
    }

    /// True only when the expression evaluates to the boolean `true`.
    pub fn allows(&self, ctx: &Ctx<'_>) -> bool {
        matches!(self.eval(ctx), Ok(V::Bool(true)))
    }

    fn eval<'a>(&'a self, ctx: &Ctx<'a>) -> Result<V<'a>, Fault> {
        Ok(match self {
            Expr::Null => V::Null,
            Expr::Bool(b) => V::Bool(*b),
            Expr::Num(n) => V::Num(*n),
            Expr::Str(s) => V::Str(Cow::Borrowed(s)),
            Expr::List(items) => V::List(
                items
                    .iter()
                    .map(|i| i.eval(ctx))
                    .collect::<Result<_, _>>()?,
            ),
            Expr::Regex(_) => return Err(Fault),
            Expr::Global(g) => match g {
                Global::Auth => from_json(Cow::Borrowed(ctx.auth)),
                Global::Data => V::Snap(ctx.data.clone()),
                Global::NewData => V::Snap(ctx.new_data.clone().ok_or(Fault)?),
                Global::Root => V::Snap(Snapshot::new(ctx.root, Vec::new())),
                Global::Now => V::Num(ctx.now as f64),
            },
            Expr::Var(name) => {
                let bound = ctx
                    .vars
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .ok_or(Fault)?;
                V::Str(Cow::Borrowed(&bound.1))
            }
            Expr::Member(obj, name) => match obj.eval(ctx)? {
                V::Json(j) => match j {
                    Cow::Borrowed(b) => {
                        from_json(Cow::Borrowed(b.get(name).unwrap_or(&Value::Null)))
                    }
                    Cow::Owned(o) => {
                        from_json(Cow::Owned(o.get(name).cloned().unwrap_or(Value::Null)))
                    }
                },
                V::Str(s) if name == "length" => V::Num(s.encode_utf16().count() as f64),
                _ => return Err(Fault),
            },
            Expr::Call(obj, method, args) => call(obj.eval(ctx)?, method, args, ctx)?,
            Expr::Not(e) => match e.eval(ctx)? {
                V::Bool(b) => V::Bool(!b),
                _ => return Err(Fault),
            },
            Expr::Neg(e) => match e.eval(ctx)? {
                V::Num(n) => V::Num(-n),
                _ => return Err(Fault),
            },
            Expr::And(a, b) => match a.eval(ctx)? {
                V::Bool(false) => V::Bool(false),
                V::Bool(true) => boolean(b.eval(ctx)?)?,
                _ => return Err(Fault),
            },
            Expr::Or(a, b) => match a.eval(ctx)? {
                V::Bool(true) => V::Bool(true),
                V::Bool(false) => boolean(b.eval(ctx)?)?,
                _ => return Err(Fault),
            },
            Expr::Cond(c, yes, no) => match c.eval(ctx)? {
                V::Bool(true) => yes.eval(ctx)?,
                V::Bool(false) => no.eval(ctx)?,
                _ => return Err(Fault),
            },
            Expr::Bin(op, a, b) => binary(*op, a.eval(ctx)?, b.eval(ctx)?)?,
        })
    }
}

fn boolean(v: V<'_>) -> Result<V<'_>, Fault> {
    match v {
        V::Bool(_) => Ok(v),
        _ => Err(Fault),
    }
}

fn binary<'a>(op: BinOp, a: V<'a>, b: V<'a>) -> Result<V<'a>, Fault> {
    use BinOp::*;
    Ok(match op {
        Eq | Ne => {
            let equal = match (&a, &b) {
                (V::Null, V::Null) => true,
                (V::Bool(x), V::Bool(y)) => x == y,
                (V::Num(x), V::Num(y)) => x == y,
                (V::Str(x), V::Str(y)) => x == y,
                // `auth != null`: an object is never null.
                (V::Json(_), V::Null) | (V::Null, V::Json(_)) => false,
                (V::Snap(_) | V::List(_) | V::Json(_), _) | (_, V::Snap(_) | V::List(_)) => {
                    return Err(Fault)
                }
                // Different primitive types are simply unequal (`data.val() == null` on a string).
                _ => false,
            };
            V::Bool(equal == (op == Eq))
        }
        Lt | Le | Gt | Ge => {
            let ord = match (&a, &b) {
                (V::Num(x), V::Num(y)) => x.partial_cmp(y).ok_or(Fault)?,
                (V::Str(x), V::Str(y)) => x.cmp(y),
                _ => return Err(Fault),
            };
            V::Bool(match op {
                Lt => ord.is_lt(),
                Le => ord.is_le(),
                Gt => ord.is_gt(),
                _ => ord.is_ge(),
            })
        }
        Add => match (a, b) {
            (V::Num(x), V::Num(y)) => V::Num(x + y),
            (V::Str(x), V::Str(y)) => V::Str(Cow::Owned(format!("{x}{y}"))),
            (V::Str(x), V::Num(y)) => V::Str(Cow::Owned(format!("{x}{}", num_str(y)))),
            (V::Num(x), V::Str(y)) => V::Str(Cow::Owned(format!("{}{y}", num_str(x)))),
            _ => return Err(Fault),
        },
        Sub | Mul | Div | Rem => match (a, b) {
            (V::Num(x), V::Num(y)) => V::Num(match op {
                Sub => x - y,
                Mul => x * y,
                Div => x / y,
                _ => x % y,
            }),
            _ => return Err(Fault),
        },
    })
}

fn string_arg<'a>(args: &'a [Expr], ctx: &Ctx<'a>) -> Result<Cow<'a, str>, Fault> {
    match args.first().ok_or(Fault)?.eval(ctx)? {
        V::Str(s) => Ok(s),
        _ => Err(Fault),
    }
}

fn call<'a>(
    obj: V<'a>,
    method: &'a Method,
    args: &'a [Expr],
    ctx: &Ctx<'a>,
) -> Result<V<'a>, Fault> {
    use Method::*;
    match obj {
        V::Snap(snap) => Ok(match method {
            Val => snap.value().map_or(V::Null, from_json),
            Child => V::Snap(snap.child(string_arg(args, ctx)?)),
            Parent => V::Snap(snap.parent().ok_or(Fault)?),
            Exists => V::Bool(snap.exists()),
            HasChild => V::Bool(snap.child(string_arg(args, ctx)?).exists()),
            HasChildren => match args.first() {
                None => V::Bool(snap.value().is_some_and(|v| v.is_object())),
                Some(list) => match list.eval(ctx)? {
                    V::List(names) => {
                        let mut all = true;
                        for n in names {
                            let V::Str(n) = n else { return Err(Fault) };
                            all &= snap.child(n).exists();
                        }
                        V::Bool(all)
                    }
                    _ => return Err(Fault),
                },
            },
            IsString => V::Bool(snap.value().is_some_and(|v| v.is_string())),
            IsNumber => V::Bool(snap.value().is_some_and(|v| v.is_number())),
            IsBoolean => V::Bool(snap.value().is_some_and(|v| v.is_boolean())),
            _ => return Err(Fault),
        }),
        V::Str(s) => Ok(match method {
            Contains => V::Bool(s.contains(string_arg(args, ctx)?.as_ref())),
            BeginsWith => V::Bool(s.starts_with(string_arg(args, ctx)?.as_ref())),
            EndsWith => V::Bool(s.ends_with(string_arg(args, ctx)?.as_ref())),
            Matches(re) => V::Bool(re.is_match(&s)),
            ToLowerCase => V::Str(Cow::Owned(s.to_lowercase())),
            ToUpperCase => V::Str(Cow::Owned(s.to_uppercase())),
            _ => return Err(Fault),
        }),
        _ => Err(Fault),
    }
}
