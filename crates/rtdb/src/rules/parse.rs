//! Rule expressions from text: a tokenizer and a recursive-descent parser with JavaScript's
//! precedence (`?:` < `||` < `&&` < equality < relational < `+ -` < `* / %` < unary < member/call).
//!
//! Everything the evaluator cannot do is refused here, with what and where, so a rule that loads
//! is a rule that is enforced as written.

use regex::Regex;

use super::expr::{BinOp, Expr, Global, Method};

/// Where an expression sits, for names it may use and for messages.
pub struct Scope<'a> {
    /// The `$wildcards` bound on the way down to this rule.
    pub vars: &'a [String],
    /// `newData` exists in `.write` and `.validate`, not in `.read`.
    pub has_new_data: bool,
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num(f64),
    Str(String),
    Ident(String),
    Regex(String, String),
    P(&'static str),
}

const PUNCT: [&str; 24] = [
    "===", "!==", "==", "!=", "<=", ">=", "&&", "||", "(", ")", "[", "]", ",", ".", "?", ":", "!",
    "<", ">", "+", "-", "*", "/", "%",
];

fn tokenize(src: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut out: Vec<Tok> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' || c == '"' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("a string literal is not closed".into()),
                    Some(&q) if q == c => break,
                    Some('\\') => {
                        let esc = chars.get(i + 1).ok_or("a string literal is not closed")?;
                        s.push(match esc {
                            'n' => '\n',
                            't' => '\t',
                            other => *other,
                        });
                        i += 2;
                        continue;
                    }
                    Some(&ch) => s.push(ch),
                }
                i += 1;
            }
            i += 1;
            out.push(Tok::Str(s));
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            let n = text
                .parse()
                .map_err(|_| format!("{text:?} is not a number"))?;
            out.push(Tok::Num(n));
        } else if c.is_alphabetic() || c == '_' || c == '$' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            out.push(Tok::Ident(chars[start..i].iter().collect()));
        } else if c == '/' && regex_expected(&out) {
            // `.matches(/.../i)`: the only place a slash opens a regular expression.
            let mut body = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("a regular expression is not closed".into()),
                    Some('/') => break,
                    Some('\\') => {
                        body.push('\\');
                        if let Some(&n) = chars.get(i + 1) {
                            body.push(n);
                        }
                        i += 2;
                        continue;
                    }
                    Some(&ch) => body.push(ch),
                }
                i += 1;
            }
            i += 1;
            let start = i;
            while i < chars.len() && chars[i].is_ascii_alphabetic() {
                i += 1;
            }
            out.push(Tok::Regex(body, chars[start..i].iter().collect()));
        } else {
            let rest: String = chars[i..chars.len().min(i + 3)].iter().collect();
            let p = PUNCT
                .iter()
                .find(|p| rest.starts_with(**p))
                .ok_or_else(|| format!("the character {c:?} is not part of the rules language"))?;
            out.push(Tok::P(p));
            i += p.chars().count();
        }
    }
    Ok(out)
}

fn regex_expected(out: &[Tok]) -> bool {
    matches!(out, [.., Tok::Ident(m), Tok::P("(")] if m == "matches")
}

/// Parses one rule expression.
pub fn parse(src: &str, scope: &Scope<'_>) -> Result<Expr, String> {
    let toks = tokenize(src)?;
    let mut p = Parser {
        toks,
        pos: 0,
        scope,
    };
    let e = p.ternary()?;
    if let Some(t) = p.toks.get(p.pos) {
        return Err(format!(
            "unexpected {} after a complete expression",
            show(t)
        ));
    }
    Ok(e)
}

struct Parser<'s> {
    toks: Vec<Tok>,
    pos: usize,
    scope: &'s Scope<'s>,
}

fn show(t: &Tok) -> String {
    match t {
        Tok::Num(n) => format!("number {n}"),
        Tok::Str(s) => format!("string {s:?}"),
        Tok::Ident(s) => format!("{s:?}"),
        Tok::Regex(b, _) => format!("regular expression /{b}/"),
        Tok::P(p) => format!("{p:?}"),
    }
}

impl Parser<'_> {
    fn peek_p(&self, p: &str) -> bool {
        matches!(self.toks.get(self.pos), Some(Tok::P(q)) if *q == p)
    }

    fn eat(&mut self, p: &str) -> bool {
        let hit = self.peek_p(p);
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn expect(&mut self, p: &str) -> Result<(), String> {
        if self.eat(p) {
            return Ok(());
        }
        match self.toks.get(self.pos) {
            Some(t) => Err(format!("expected {p:?} but found {}", show(t))),
            None => Err(format!("expected {p:?} but the expression ended")),
        }
    }

    fn ternary(&mut self) -> Result<Expr, String> {
        let cond = self.or()?;
        if !self.eat("?") {
            return Ok(cond);
        }
        let yes = self.ternary()?;
        self.expect(":")?;
        let no = self.ternary()?;
        Ok(Expr::Cond(Box::new(cond), Box::new(yes), Box::new(no)))
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut lhs = self.and()?;
        while self.eat("||") {
            lhs = Expr::Or(Box::new(lhs), Box::new(self.and()?));
        }
        Ok(lhs)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut lhs = self.binary(0)?;
        while self.eat("&&") {
            lhs = Expr::And(Box::new(lhs), Box::new(self.binary(0)?));
        }
        Ok(lhs)
    }

    /// Equality (level 0), relational (1), additive (2), multiplicative (3).
    fn binary(&mut self, level: usize) -> Result<Expr, String> {
        const LEVELS: [&[(&str, BinOp)]; 4] = [
            &[
                ("===", BinOp::Eq),
                ("!==", BinOp::Ne),
                ("==", BinOp::Eq),
                ("!=", BinOp::Ne),
            ],
            &[
                ("<=", BinOp::Le),
                (">=", BinOp::Ge),
                ("<", BinOp::Lt),
                (">", BinOp::Gt),
            ],
            &[("+", BinOp::Add), ("-", BinOp::Sub)],
            &[("*", BinOp::Mul), ("/", BinOp::Div), ("%", BinOp::Rem)],
        ];
        if level == LEVELS.len() {
            return self.unary();
        }
        let mut lhs = self.binary(level + 1)?;
        'more: loop {
            for (p, op) in LEVELS[level] {
                if self.eat(p) {
                    let rhs = self.binary(level + 1)?;
                    lhs = Expr::Bin(*op, Box::new(lhs), Box::new(rhs));
                    continue 'more;
                }
            }
            return Ok(lhs);
        }
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.eat("!") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.eat("-") {
            return Ok(Expr::Neg(Box::new(self.unary()?)));
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Expr, String> {
        let mut e = self.primary()?;
        loop {
            if self.eat(".") {
                let name = match self.toks.get(self.pos) {
                    Some(Tok::Ident(n)) => n.clone(),
                    _ => return Err("a name must follow \".\"".into()),
                };
                self.pos += 1;
                if self.eat("(") {
                    let args = self.args()?;
                    let method = method(&name, args.len(), &args)?;
                    let args = match method {
                        Method::Matches(_) => Vec::new(),
                        _ => args,
                    };
                    e = Expr::Call(Box::new(e), method, args);
                } else {
                    e = Expr::Member(Box::new(e), name);
                }
            } else if self.peek_p("[") {
                return Err("indexing with [] is not supported; use .child() or .".into());
            } else {
                return Ok(e);
            }
        }
    }

    fn args(&mut self) -> Result<Vec<Expr>, String> {
        let mut args = Vec::new();
        if self.eat(")") {
            return Ok(args);
        }
        loop {
            if let Some(Tok::Regex(body, flags)) = self.toks.get(self.pos).cloned() {
                self.pos += 1;
                args.push(Expr::Regex(regex(&body, &flags)?));
            } else {
                args.push(self.ternary()?);
            }
            if self.eat(")") {
                return Ok(args);
            }
            self.expect(",")?;
        }
    }

    fn primary(&mut self) -> Result<Expr, String> {
        let Some(tok) = self.toks.get(self.pos).cloned() else {
            return Err("the expression ended too early".into());
        };
        self.pos += 1;
        Ok(match tok {
            Tok::Num(n) => Expr::Num(n),
            Tok::Str(s) => Expr::Str(s),
            Tok::P("(") => {
                let e = self.ternary()?;
                self.expect(")")?;
                e
            }
            Tok::P("[") => {
                let mut items = Vec::new();
                if !self.eat("]") {
                    loop {
                        items.push(self.ternary()?);
                        if self.eat("]") {
                            break;
                        }
                        self.expect(",")?;
                    }
                }
                Expr::List(items)
            }
            Tok::Ident(name) => match name.as_str() {
                "true" => Expr::Bool(true),
                "false" => Expr::Bool(false),
                "null" => Expr::Null,
                "auth" => Expr::Global(Global::Auth),
                "data" => Expr::Global(Global::Data),
                "root" => Expr::Global(Global::Root),
                "now" => Expr::Global(Global::Now),
                "newData" if self.scope.has_new_data => Expr::Global(Global::NewData),
                "newData" => return Err("newData is not available in .read rules".into()),
                v if v.starts_with('$') => {
                    if !self.scope.vars.iter().any(|b| b == v) {
                        return Err(format!("{v} is not a wildcard on the path to this rule"));
                    }
                    Expr::Var(v.to_owned())
                }
                other => return Err(format!("{other:?} is not supported")),
            },
            other => return Err(format!("unexpected {}", show(&other))),
        })
    }
}

fn regex(body: &str, flags: &str) -> Result<Regex, String> {
    let prefix = match flags {
        "" => "",
        "i" => "(?i)",
        other => {
            return Err(format!(
                "regular expression flags {other:?} are not supported"
            ))
        }
    };
    Regex::new(&format!("{prefix}{body}"))
        .map_err(|e| format!("the regular expression /{body}/ is not valid: {e}"))
}

fn method(name: &str, argc: usize, args: &[Expr]) -> Result<Method, String> {
    let (m, arity): (Method, &[usize]) = match name {
        "val" => (Method::Val, &[0]),
        "child" => (Method::Child, &[1]),
        "parent" => (Method::Parent, &[0]),
        "exists" => (Method::Exists, &[0]),
        "hasChild" => (Method::HasChild, &[1]),
        "hasChildren" => (Method::HasChildren, &[0, 1]),
        "isString" => (Method::IsString, &[0]),
        "isNumber" => (Method::IsNumber, &[0]),
        "isBoolean" => (Method::IsBoolean, &[0]),
        "contains" => (Method::Contains, &[1]),
        "beginsWith" => (Method::BeginsWith, &[1]),
        "endsWith" => (Method::EndsWith, &[1]),
        "toLowerCase" => (Method::ToLowerCase, &[0]),
        "toUpperCase" => (Method::ToUpperCase, &[0]),
        "matches" => match args {
            [Expr::Regex(re)] => (Method::Matches(re.clone()), &[1]),
            _ => return Err(".matches() takes one regular expression literal, /like this/".into()),
        },
        other => return Err(format!("the method .{other}() is not supported")),
    };
    if !arity.contains(&argc) {
        return Err(format!(".{name}() does not take {argc} argument(s)"));
    }
    if !matches!(m, Method::Matches(_)) && args.iter().any(|a| matches!(a, Expr::Regex(_))) {
        return Err(format!(
            "a regular expression can only be given to .matches(), not .{name}()"
        ));
    }
    Ok(m)
}
