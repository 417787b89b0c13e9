//! The REST and streaming front end: request parsing and Firebase's answers.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::access::Access;
use crate::db::{etag, Db, WriteOp, WriteResult};
use crate::error::DbError;
use crate::hub::{frame, Subscription};
use crate::path::DbPath;
use crate::query::{Params, Print};
use crate::rules::Caller;
use crate::tree;

/// Largest request body Firebase accepts over REST.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    /// Credentials and rules.
    pub access: std::sync::Arc<Access>,
    /// Interval between `keep-alive` events on streams.
    pub keepalive: Duration,
    /// The sign-in endpoints.
    pub identity: std::sync::Arc<crate::identity::IdentityService>,
    /// Longest pause while a request body arrives.
    pub body_idle_timeout: Duration,
}

/// The router: every path is a database location.
pub fn router(state: AppState) -> Router {
    Router::new().fallback(handle).with_state(state)
}

async fn handle(State(app): State<AppState>, mut req: Request) -> Response {
    // HEAD is a GET without the body (RFC 9110 §9.3.2): the same checks, status and headers, so
    // a monitor or a proxy probing a location learns what a GET would say. A stream asked for by
    // HEAD ends at once, with its body.
    let head = req.method() == Method::HEAD;
    if head {
        *req.method_mut() = Method::GET;
    }
    let resp = match serve(&app, req).await {
        Ok(resp) => resp,
        Err(err) => error_response(&err),
    };
    if head {
        without_body(resp)
    } else {
        resp
    }
}

fn without_body(resp: Response) -> Response {
    let (mut parts, body) = resp.into_parts();
    if let Some(len) = http_body::Body::size_hint(&body).exact() {
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    Response::from_parts(parts, axum::body::Body::empty())
}

/// A failed `if-match` answers with the current value and its ETag, which only a caller who may
/// read the location may see: a writer who may not read learns only that the condition failed.
fn unless_readable(app: &AppState, caller: &Caller, path: &DbPath, err: DbError) -> DbError {
    match err {
        DbError::PreconditionFailed { .. }
            if app
                .db
                .with_root(|root| app.access.check_read(caller, path, root))
                .is_err() =>
        {
            DbError::PreconditionHidden
        }
        other => other,
    }
}

fn error_response(err: &DbError) -> Response {
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let DbError::PreconditionFailed { current, etag } = err {
        let mut resp = json_response(status, current, Print::Normal);
        set_etag(&mut resp, etag);
        return resp;
    }
    if status.is_server_error() {
        tracing::error!(error = %err, "request failed");
    }
    json_response(status, &json!({ "error": err.to_string() }), Print::Normal)
}

fn json_response(status: StatusCode, value: &impl serde::Serialize, print: Print) -> Response {
    let body = match print {
        Print::Silent => return StatusCode::NO_CONTENT.into_response(),
        Print::Pretty => serde_json::to_string_pretty(value).unwrap_or_default(),
        Print::Normal => serde_json::to_string(value).unwrap_or_default(),
    };
    json_body(status, body)
}

/// Answers with JSON already serialised (compact); `print=pretty` re-indents it.
fn json_text_response(status: StatusCode, text: String, print: Print) -> Response {
    let body = match print {
        Print::Silent => return StatusCode::NO_CONTENT.into_response(),
        Print::Pretty => serde_json::from_str::<Value>(&text)
            .and_then(|v| serde_json::to_string_pretty(&v))
            .unwrap_or(text),
        Print::Normal => text,
    };
    json_body(status, body)
}

fn json_body(status: StatusCode, body: String) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    resp
}

/// CORS preflight: browsers may call the REST API from any origin, as with Firebase.
fn preflight() -> Response {
    let mut resp = StatusCode::OK.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, HEAD, PUT, POST, PATCH, DELETE, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(
            "Authorization, Content-Type, If-Match, If-None-Match, X-Firebase-ETag, X-HTTP-Method-Override, \
             X-Client-Version, X-Firebase-Client, X-Firebase-gmpid, X-Firebase-AppCheck, X-Firebase-Locale, \
             X-Goog-Api-Key",
        ),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("ETag"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    resp
}

const RULES_PATH: &str = "/.settings/rules.json";

/// `GET`/`PUT /.settings/rules.json`: the admin reads or replaces the rules.
async fn rules_endpoint(
    app: &AppState,
    caller: &Caller,
    method: Method,
    body: Body,
    print: Print,
) -> Result<Response, DbError> {
    if *caller != Caller::Admin {
        return Err(DbError::PermissionDenied);
    }
    match method {
        Method::GET => Ok(json_response(
            StatusCode::OK,
            &app.access.rules_document(),
            print,
        )),
        Method::PUT => {
            let doc = read_json(body, app.body_idle_timeout).await?;
            app.access.set_rules(doc, &app.db)?;
            Ok(json_response(
                StatusCode::OK,
                &json!({"status": "ok"}),
                print,
            ))
        }
        other => Err(DbError::BadMethod(other.to_string())),
    }
}

fn set_etag(resp: &mut Response, etag: &str) {
    if let Ok(v) = HeaderValue::from_str(etag) {
        resp.headers_mut().insert(header::ETAG, v);
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// The method after `X-HTTP-Method-Override` (honoured on POST only, as Firebase does).
fn effective_method(req: &Request) -> Result<Method, DbError> {
    let method = req.method().clone();
    match (
        method == Method::POST,
        header_str(req.headers(), "x-http-method-override"),
    ) {
        (true, Some(over)) => match over.to_ascii_uppercase().as_str() {
            "PUT" => Ok(Method::PUT),
            "PATCH" => Ok(Method::PATCH),
            "DELETE" => Ok(Method::DELETE),
            "POST" => Ok(Method::POST),
            "GET" => Ok(Method::GET),
            other => Err(DbError::BadMethod(other.to_owned())),
        },
        _ => Ok(method),
    }
}

async fn serve(app: &AppState, req: Request) -> Result<Response, DbError> {
    if req.method() == Method::OPTIONS {
        return Ok(preflight());
    }
    // The browser client: public files, before credentials (they hold no data).
    if let Some(resp) = crate::web::serve(req.method(), req.uri().path()) {
        return Ok(resp);
    }
    // The realtime protocol: credentials come over the connection (`auth`).
    if req.uri().path() == crate::realtime::PATH {
        return Ok(crate::realtime::upgrade(app.clone(), req).await);
    }
    // Sign-in, before credentials: it is how a caller gets one.
    if crate::identity::endpoints::is_identity_path(req.uri().path()) {
        return Ok(crate::identity::endpoints::handle(&app.identity, req).await);
    }
    let params = Params::parse(req.uri().query())?;
    let caller = app.access.identify(
        params.auth.as_deref(),
        params.auth_override.as_deref(),
        req.headers(),
    )?;
    let method = effective_method(&req)?;
    if req.uri().path() == RULES_PATH {
        return rules_endpoint(app, &caller, method, req.into_body(), params.print).await;
    }
    let path = DbPath::from_url_path(req.uri().path())?;
    let headers = req.headers().clone();
    let wants_stream =
        header_str(&headers, "accept").is_some_and(|a| a.contains("text/event-stream"));
    let if_match = header_str(&headers, "if-match").map(str::to_owned);
    if if_match.is_some() && method != Method::PUT && method != Method::DELETE {
        return Err(DbError::BadData(
            "if-match is only supported on PUT and DELETE requests".into(),
        ));
    }
    let access = &app.access;
    match method {
        Method::GET => {
            access.check_query(&path, params.filter.as_ref())?;
            if wants_stream {
                app.db
                    .with_root(|root| access.check_read(&caller, &path, root))?;
                Ok(stream(app, path, params, caller))
            } else {
                get(app, &caller, &path, &params, &headers)
            }
        }
        Method::PUT => {
            access.precheck_write(&caller, &path, false)?;
            let value = read_json(req.into_body(), app.body_idle_timeout).await?;
            let op = WriteOp::Set {
                path: path.clone(),
                value,
                if_match,
            };
            let result = app
                .db
                .write_guarded(op, access.write_guard(&caller))
                .await
                .map_err(|e| unless_readable(app, &caller, &path, e))?;
            Ok(write_response(result, params.print))
        }
        Method::DELETE => {
            let op = WriteOp::Set {
                path: path.clone(),
                value: Value::Null,
                if_match,
            };
            let result = app
                .db
                .write_guarded(op, access.write_guard(&caller))
                .await
                .map_err(|e| unless_readable(app, &caller, &path, e))?;
            Ok(write_response(result, params.print))
        }
        Method::PATCH => {
            access.precheck_write(&caller, &path, true)?;
            let Value::Object(children) = read_json(req.into_body(), app.body_idle_timeout).await?
            else {
                return Err(DbError::BadData(
                    "Invalid data; a PATCH body must be a JSON object".into(),
                ));
            };
            let op = WriteOp::Update { path, children };
            let result = app
                .db
                .write_guarded(op, access.write_guard(&caller))
                .await?;
            Ok(write_response(result, params.print))
        }
        Method::POST => {
            access.precheck_write(&caller, &path, true)?;
            let value = read_json(req.into_body(), app.body_idle_timeout).await?;
            let op = WriteOp::Push { path, value };
            let result = app
                .db
                .write_guarded(op, access.write_guard(&caller))
                .await?;
            Ok(write_response(result, params.print))
        }
        other => Err(DbError::BadMethod(other.to_string())),
    }
}

async fn read_json(body: Body, idle: Duration) -> Result<Value, DbError> {
    let too_big = || {
        DbError::BadData(
            "Data to write exceeds the maximum size that can be modified with a single request."
                .into(),
        )
    };
    // A client that stops sending half-way must not hold the connection (and its buffer)
    // for ever: each pause in the body is bounded, not the whole upload, so a large write
    // over a slow link still arrives.
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    loop {
        match tokio::time::timeout(idle, stream.next()).await {
            Err(_) => return Err(DbError::BodyTimeout(idle)),
            Ok(None) => break,
            Ok(Some(Err(_))) => {
                return Err(DbError::BadData(
                    "the request body was cut off before its end".into(),
                ))
            }
            Ok(Some(Ok(chunk))) => {
                if bytes.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err(too_big());
                }
                bytes.extend_from_slice(&chunk);
            }
        }
    }
    // Parsing a large body takes long enough to hold up the other requests of this runtime
    // thread: it gets a blocking thread of its own.
    if bytes.len() >= LARGE_BODY_BYTES {
        return tokio::task::spawn_blocking(move || parse_json(&bytes))
            .await
            .map_err(|_| DbError::Unavailable)?;
    }
    parse_json(&bytes)
}

/// Bodies of this many bytes are parsed off the runtime's threads.
const LARGE_BODY_BYTES: usize = 256 << 10;

fn parse_json(bytes: &[u8]) -> Result<Value, DbError> {
    serde_json::from_slice(bytes).map_err(|e| {
        if e.to_string().contains("recursion limit") {
            DbError::BadData(
                "Invalid data; it is nested too deeply (the limit is 32 levels)".into(),
            )
        } else {
            DbError::BadData("Invalid data; couldn't parse JSON object, array, or value.".into())
        }
    })
}

fn write_response(result: WriteResult, print: Print) -> Response {
    match result {
        WriteResult::Set { value, etag } => {
            let mut resp = json_text_response(StatusCode::OK, value, print);
            set_etag(&mut resp, &etag);
            resp
        }
        WriteResult::Updated(echo) => json_text_response(StatusCode::OK, echo, print),
        WriteResult::Pushed(name) => json_response(StatusCode::OK, &json!({ "name": name }), print),
    }
}

fn get(
    app: &AppState,
    caller: &Caller,
    path: &DbPath,
    params: &Params,
    headers: &HeaderMap,
) -> Result<Response, DbError> {
    // The rules and the answer look at the same tree. The answer is serialised straight from
    // the tree, as a rendered copy of a large value would cost more than its text.
    let answer = app.db.with_root(|root| {
        app.access.check_read(caller, path, root)?;
        let v = tree::get(root, path);
        let tag = etag(v);
        if header_str(headers, "if-none-match") == Some(tag.as_str()) {
            return Ok::<_, DbError>((None, tag));
        }
        let print = params.print;
        let body = match (v, &params.filter) {
            (None, _) => json_text(&Value::Null, print),
            (Some(v), _) if params.shallow => json_text(&tree::Shallow(v), print),
            (Some(v), Some(f)) => json_text(&tree::Rendered(&f.apply(v)), print),
            // format=export keeps the stored form: integer keys stay an object, as Firebase exports.
            (Some(v), None) if params.export => json_text(v, print),
            (Some(v), None) => json_text(&tree::Rendered(v), print),
        };
        Ok((Some(body), tag))
    })?;
    let (Some(body), tag) = answer else {
        let mut resp = StatusCode::NOT_MODIFIED.into_response();
        set_etag(&mut resp, &answer.1);
        return Ok(resp);
    };
    let mut resp = match body {
        Some(text) => json_body(StatusCode::OK, text),
        None => StatusCode::NO_CONTENT.into_response(),
    };
    if header_str(headers, "x-firebase-etag") == Some("true") {
        set_etag(&mut resp, &tag);
    }
    Ok(resp)
}

/// `value` as the body `print` asks for; `None` for `print=silent`.
fn json_text(value: &impl serde::Serialize, print: Print) -> Option<String> {
    match print {
        Print::Silent => None,
        Print::Pretty => Some(serde_json::to_string_pretty(value).unwrap_or_default()),
        Print::Normal => Some(serde_json::to_string(value).unwrap_or_default()),
    }
}

/// Removes the listener when the client goes away.
struct Unsubscribe {
    db: Db,
    path: DbPath,
    id: u64,
}

impl Drop for Unsubscribe {
    fn drop(&mut self) {
        self.db.unsubscribe(&self.path, self.id);
    }
}

struct StreamState {
    sub: Subscription,
    keepalive: tokio::time::Interval,
    /// When the caller's ID token expires; the stream then ends with `auth_revoked`.
    expiry: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    revoked: bool,
    _guard: Unsubscribe,
}

/// Firebase's `auth_revoked` payload: the client should reconnect with a fresh token.
const AUTH_REVOKED_DATA: &str = "\"credential is no longer valid\"";

/// The instant a signed-in caller's ID token expires, for streams opened with one. Admins,
/// anonymous callers and `auth_variable_override` identities (provider `custom`) never expire.
pub(crate) fn token_deadline(caller: &Caller) -> Option<tokio::time::Instant> {
    let Caller::User(id) = caller else {
        return None;
    };
    if id.provider == "custom" {
        return None;
    }
    let exp = id.token.get("exp").and_then(Value::as_u64)?;
    // To the millisecond: whole seconds would let a stream outlive its token by up to one.
    let at = std::time::UNIX_EPOCH + Duration::from_secs(exp);
    let left = at
        .duration_since(std::time::SystemTime::now())
        .unwrap_or(Duration::ZERO);
    Some(tokio::time::Instant::now() + left)
}

fn stream(app: &AppState, path: DbPath, params: Params, caller: Caller) -> Response {
    let expiry = token_deadline(&caller).map(|at| Box::pin(tokio::time::sleep_until(at)));
    let sub = app.db.subscribe(path.clone(), params.filter, caller);
    let guard = Unsubscribe {
        db: app.db.clone(),
        path,
        id: sub.id,
    };
    let start = tokio::time::Instant::now() + app.keepalive;
    let mut keepalive = tokio::time::interval_at(start, app.keepalive);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let state = StreamState {
        sub,
        keepalive,
        expiry,
        revoked: false,
        _guard: guard,
    };
    let body = futures_util::stream::unfold(state, |mut st| async move {
        if st.revoked {
            return None;
        }
        let expired = async {
            match st.expiry.as_mut() {
                Some(sleep) => sleep.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = expired => {
                st.revoked = true;
                Some((Ok(frame("auth_revoked", AUTH_REVOKED_DATA)), st))
            }
            msg = st.sub.rx.recv() => {
                Some((Ok::<Bytes, Infallible>(msg?), st))
            }
            _ = st.keepalive.tick() => Some((Ok(frame("keep-alive", "null")), st)),
        }
    });
    let mut resp = Response::new(Body::from_stream(body));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    resp
}
