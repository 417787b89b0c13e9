//! The vocabulary of Firebase's realtime protocol (version 5), as the official SDKs speak it
//! over `/.ws`: what a client asks (`{"t":"d","d":{"r":N,"a":ACTION,"b":BODY}}`), what a server
//! answers (`{"t":"d","d":{"r":N,"b":{"s":STATUS,"d":DATA}}}`) and pushes (`{"t":"d","d":{"a":
//! "d"|"m"|"c"|"ac","b":...}}`), and the control layer (`{"t":"c",...}`: hello, ping/pong,
//! reset, shutdown, error). Shared by huddle-db's server and the signal crate's client, so
//! both read and write the one dialect. See `docs/rtdb.md` for the protocol in prose.

pub mod frames;
pub mod hash;

use serde_json::{json, Map, Value};

use crate::path::DbPath;
use crate::query::{Filter, OrderBy, MAX_NAME, MIN_NAME};

/// The protocol version the SDKs send as `v=` and expect in the hello.
pub const PROTOCOL_VERSION: &str = "5";

/// A request that could not be read, with the words the answer carries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Not JSON, or not the envelope.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A body field is missing or has the wrong type.
    #[error("invalid request: {0}")]
    Invalid(String),
}

/// One client message.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage {
    /// A data request (`t: "d"`), numbered `r` for its answer.
    Request { id: Option<u64>, request: Request },
    /// Control (`t: "c"`): a ping, asking for a pong.
    Ping,
    /// Other control messages, ignored.
    OtherControl,
}

/// A data request.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// `q`: listen at `path` (with a query when tagged), `hash` of what the client has.
    Listen {
        path: DbPath,
        query: Option<Value>,
        tag: Option<u64>,
        hash: Option<String>,
    },
    /// `n`: stop listening.
    Unlisten {
        path: DbPath,
        query: Option<Value>,
        tag: Option<u64>,
    },
    /// `p`: set `data` at `path`, only if the current value hashes to `hash` when given.
    Put {
        path: DbPath,
        data: Value,
        hash: Option<String>,
    },
    /// `m`: update children of `path`.
    Merge {
        path: DbPath,
        data: Map<String, Value>,
    },
    /// `g`: read once.
    Get { path: DbPath, query: Option<Value> },
    /// `o`: when this connection closes, set `data` at `path`.
    OnDisconnectPut { path: DbPath, data: Value },
    /// `om`: when this connection closes, update children of `path`.
    OnDisconnectMerge {
        path: DbPath,
        data: Map<String, Value>,
    },
    /// `oc`: cancel what is registered at or below `path`.
    OnDisconnectCancel { path: DbPath },
    /// `auth` (an ID token) or `gauth` (an admin credential); `authvar` is the admin's
    /// "act as" override (`databaseAuthVariableOverride`), `noauth` its "as nobody".
    Auth {
        cred: String,
        admin_style: bool,
        authvar: Option<Value>,
        noauth: bool,
    },
    /// `unauth`: back to unauthenticated.
    Unauth,
    /// `s`: client statistics, acknowledged and ignored.
    Stats,
    /// An action this server does not know (`unappeck`, `appcheck`, ...), answered "ok" when
    /// it is one the SDKs send, else refused.
    Other { action: String },
}

impl ClientMessage {
    /// Reads one joined text message.
    pub fn parse(text: &str) -> Result<ClientMessage, WireError> {
        let v: Value =
            serde_json::from_str(text).map_err(|e| WireError::Malformed(e.to_string()))?;
        let layer = v.get("t").and_then(Value::as_str);
        let d = v.get("d");
        match (layer, d) {
            (Some("c"), Some(d)) => Ok(match d.get("t").and_then(Value::as_str) {
                Some("p") => ClientMessage::Ping,
                _ => ClientMessage::OtherControl,
            }),
            (Some("d"), Some(d)) => {
                let id = match d.get("r") {
                    None => None,
                    Some(r) => Some(r.as_u64().ok_or_else(|| {
                        WireError::Malformed("request number r must be an integer".into())
                    })?),
                };
                let action = d
                    .get("a")
                    .and_then(Value::as_str)
                    .ok_or_else(|| WireError::Malformed("no action a".into()))?;
                let empty = Value::Object(Map::new());
                let body = d.get("b").unwrap_or(&empty);
                Ok(ClientMessage::Request {
                    id,
                    request: Request::parse(action, body)?,
                })
            }
            _ => Err(WireError::Malformed(
                "expected {\"t\":\"d\"|\"c\",\"d\":...}".into(),
            )),
        }
    }
}

fn path_of(body: &Value) -> Result<DbPath, WireError> {
    let p = body
        .get("p")
        .and_then(Value::as_str)
        .ok_or_else(|| WireError::Invalid("no path p".into()))?;
    DbPath::parse(p).map_err(|e| WireError::Invalid(e.to_string()))
}

fn object_of(body: &Value, what: &str) -> Result<Map<String, Value>, WireError> {
    match body.get("d") {
        Some(Value::Object(m)) => Ok(m.clone()),
        _ => Err(WireError::Invalid(format!("{what} needs an object d"))),
    }
}

fn tag_of(body: &Value) -> Result<Option<u64>, WireError> {
    match body.get("t") {
        None | Some(Value::Null) => Ok(None),
        Some(t) => t
            .as_u64()
            .map(Some)
            .ok_or_else(|| WireError::Invalid("tag t must be an integer".into())),
    }
}

fn query_of(body: &Value) -> Option<Value> {
    body.get("q").filter(|q| !q.is_null()).cloned()
}

impl Request {
    fn parse(action: &str, body: &Value) -> Result<Request, WireError> {
        Ok(match action {
            "q" => Request::Listen {
                path: path_of(body)?,
                query: query_of(body),
                tag: tag_of(body)?,
                hash: body.get("h").and_then(Value::as_str).map(str::to_owned),
            },
            "n" => Request::Unlisten {
                path: path_of(body)?,
                query: query_of(body),
                tag: tag_of(body)?,
            },
            "p" => Request::Put {
                path: path_of(body)?,
                data: body.get("d").cloned().unwrap_or(Value::Null),
                hash: body.get("h").and_then(Value::as_str).map(str::to_owned),
            },
            "m" => Request::Merge {
                path: path_of(body)?,
                data: object_of(body, "an update")?,
            },
            "g" => Request::Get {
                path: path_of(body)?,
                query: query_of(body),
            },
            "o" => Request::OnDisconnectPut {
                path: path_of(body)?,
                data: body.get("d").cloned().unwrap_or(Value::Null),
            },
            "om" => Request::OnDisconnectMerge {
                path: path_of(body)?,
                data: object_of(body, "an onDisconnect update")?,
            },
            "oc" => Request::OnDisconnectCancel {
                path: path_of(body)?,
            },
            "auth" | "gauth" => Request::Auth {
                cred: body
                    .get("cred")
                    .and_then(Value::as_str)
                    .ok_or_else(|| WireError::Invalid("auth needs a string cred".into()))?
                    .to_owned(),
                admin_style: action == "gauth",
                authvar: body.get("authvar").cloned(),
                noauth: body.get("noauth").and_then(Value::as_bool) == Some(true),
            },
            "unauth" => Request::Unauth,
            "s" => Request::Stats,
            other => Request::Other {
                action: other.to_owned(),
            },
        })
    }
}

/// A query object of a tagged listen or a get (`sp`, `sn`, `sin`, `ep`, `en`, `ein`, `l`,
/// `vf`, `i`) as the filter the server applies. `None`: the query loads everything.
pub fn filter_from_query(q: &Value) -> Result<Option<Filter>, WireError> {
    let Value::Object(q) = q else {
        return Ok(None);
    };
    if q.is_empty() {
        return Ok(None);
    }
    let order_by = match q.get("i").and_then(Value::as_str) {
        None | Some(".priority") => OrderBy::Priority,
        Some(".key") => OrderBy::Key,
        Some(".value") => OrderBy::Value,
        Some(child) => OrderBy::Child(
            DbPath::parse(child).map_err(|e| WireError::Invalid(format!("index {child}: {e}")))?,
        ),
    };
    let name = |k: &str| q.get(k).and_then(Value::as_str).map(str::to_owned);
    let inclusive = |k: &str| q.get(k).and_then(Value::as_bool).unwrap_or(true);
    let mut f = Filter::ordered_by(order_by);
    if let Some(sp) = q.get("sp") {
        f.start_at = Some(sp.clone());
        f.start_name = name("sn");
        f.start_inclusive = inclusive("sin");
    }
    if let Some(ep) = q.get("ep") {
        f.end_at = Some(ep.clone());
        f.end_name = name("en");
        f.end_inclusive = inclusive("ein");
    }
    if let Some(l) = q.get("l") {
        let n = l
            .as_u64()
            .filter(|n| *n > 0)
            .ok_or_else(|| WireError::Invalid("limit l must be a positive integer".into()))?;
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        if q.get("vf").and_then(Value::as_str) == Some("r") {
            f.limit_last = Some(n);
        } else {
            f.limit_first = Some(n);
        }
    }
    // A key-ordered bound names a key; the SDK sends the sentinels for "no bound".
    if f.order_by == OrderBy::Key {
        for b in [&mut f.start_at, &mut f.end_at] {
            if b.as_ref().and_then(Value::as_str) == Some(MIN_NAME)
                || b.as_ref().and_then(Value::as_str) == Some(MAX_NAME)
            {
                *b = None;
            }
        }
    }
    Ok(Some(f))
}

/// The server's hello: its clock, the protocol version, the host to use, a session id.
pub fn hello(now_ms: u64, host: &str, session: &str) -> String {
    json!({"t": "c", "d": {"t": "h", "d": {"ts": now_ms, "v": PROTOCOL_VERSION, "h": host, "s": session}}})
        .to_string()
}

/// The answer to a ping.
pub fn pong() -> String {
    json!({"t": "c", "d": {"t": "o", "d": {}}}).to_string()
}

/// A control error (the SDK logs it).
pub fn control_error(msg: &str) -> String {
    json!({"t": "c", "d": {"t": "e", "d": msg}}).to_string()
}

/// The server is going away (`s`): the SDK stops reconnecting and reports `reason`.
pub fn shutdown(reason: &str) -> String {
    json!({"t": "c", "d": {"t": "s", "d": reason}}).to_string()
}

/// The answer to request `id`: status (`ok`, `permission_denied`, `datastale`, ...) and data.
pub fn response(id: u64, status: &str, data: Value) -> String {
    json!({"t": "d", "d": {"r": id, "b": {"s": status, "d": data}}}).to_string()
}

/// `ac`: the connection's credential is no longer valid (expired or revoked).
pub fn auth_revoked(status: &str, explanation: &str) -> String {
    json!({"t": "d", "d": {"a": "ac", "b": {"s": status, "d": explanation}}}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_requests_parse() {
        let m = ClientMessage::parse(
            r#"{"t":"d","d":{"r":3,"a":"q","b":{"p":"/rooms","q":{"i":".key","l":2,"vf":"r"},"t":1,"h":""}}}"#,
        )
        .unwrap();
        let ClientMessage::Request {
            id: Some(3),
            request:
                Request::Listen {
                    path,
                    query,
                    tag,
                    hash,
                },
        } = m
        else {
            panic!("{m:?}")
        };
        assert_eq!(path.to_string(), "/rooms");
        assert_eq!(tag, Some(1));
        assert_eq!(hash.as_deref(), Some(""));
        let f = filter_from_query(&query.unwrap()).unwrap().unwrap();
        assert_eq!(f.order_by, OrderBy::Key);
        assert_eq!(f.limit_last, Some(2));
        assert_eq!(
            ClientMessage::parse(r#"{"t":"c","d":{"t":"p","d":{}}}"#).unwrap(),
            ClientMessage::Ping
        );
        assert!(matches!(
            ClientMessage::parse(r#"{"t":"d","d":{"r":1,"a":"p","b":{}}}"#),
            Err(WireError::Invalid(_))
        ));
        assert!(matches!(
            ClientMessage::parse("[1,2"),
            Err(WireError::Malformed(_))
        ));
        assert!(matches!(
            ClientMessage::parse(r#"{"t":"d","d":{"r":"x","a":"s"}}"#),
            Err(WireError::Malformed(_))
        ));
    }

    #[test]
    fn start_after_and_end_before_exclude_their_bounds() {
        let data = serde_json::json!({"a": 1, "b": 2, "c": 2, "d": 3});
        let f = filter_from_query(
            &serde_json::json!({"i": ".value", "sp": 2, "sn": MAX_NAME, "sin": false}),
        )
        .unwrap()
        .unwrap();
        assert_eq!(f.apply(&data), serde_json::json!({"d": 3}));
        let f = filter_from_query(&serde_json::json!({"i": ".value", "sp": 2, "sn": "c"}))
            .unwrap()
            .unwrap();
        assert_eq!(f.apply(&data), serde_json::json!({"c": 2, "d": 3}));
        let f = filter_from_query(&serde_json::json!({"i": ".key", "ep": "c", "ein": false}))
            .unwrap()
            .unwrap();
        assert_eq!(f.apply(&data), serde_json::json!({"a": 1, "b": 2}));
        let f = filter_from_query(&serde_json::json!({"i": "n", "l": 1, "vf": "l"}))
            .unwrap()
            .unwrap();
        assert_eq!(f.limit_first, Some(1));
    }
}
