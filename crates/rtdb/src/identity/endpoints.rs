//! `POST /identitytoolkit.googleapis.com/v1/accounts:signUp` and
//! `POST /securetoken.googleapis.com/v1/token`, at the paths where Firebase's Auth emulator
//! serves them and with Google's bodies, so a Firebase client pointed at this origin (as at the
//! emulator) signs in unchanged. Only anonymous sign-up exists here.

use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::{mint_now, IdentityService, Tokens};

pub const SIGN_UP_PATH: &str = "/identitytoolkit.googleapis.com/v1/accounts:signUp";
pub const TOKEN_PATH: &str = "/securetoken.googleapis.com/v1/token";

/// Sign-in bodies are a few hundred bytes.
const MAX_BODY: usize = 64 * 1024;

/// True for the paths this module answers.
pub fn is_identity_path(path: &str) -> bool {
    path == SIGN_UP_PATH || path == TOKEN_PATH
}

/// An error in Google's API shape:
/// `{"error": {"code", "message", "errors": [{"message", "domain", "reason"}], "status"}}`.
/// `message` is the code clients switch on (`INVALID_REFRESH_TOKEN`, ...).
#[derive(Debug)]
struct ApiError {
    code: StatusCode,
    message: String,
    reason: &'static str,
    status: &'static str,
}

impl ApiError {
    fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            code: StatusCode::BAD_REQUEST,
            message: message.into(),
            reason: "invalid",
            status: "INVALID_ARGUMENT",
        }
    }

    fn into_response(self) -> Response {
        let body = json!({
            "error": {
                "code": self.code.as_u16(),
                "message": self.message,
                "errors": [{"message": self.message, "domain": "global", "reason": self.reason}],
                "status": self.status,
            }
        });
        json(self.code, &body)
    }
}

fn json(status: StatusCode, body: &Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    resp
}

/// Answers a request to one of the two paths (see [`is_identity_path`]).
pub async fn handle(service: &IdentityService, req: Request) -> Response {
    match serve(service, req).await {
        Ok(resp) => resp,
        Err(err) => err.into_response(),
    }
}

async fn serve(service: &IdentityService, req: Request) -> Result<Response, ApiError> {
    if req.method() != Method::POST {
        return Err(ApiError {
            code: StatusCode::METHOD_NOT_ALLOWED,
            message: format!("{} is not allowed here; use POST", req.method()),
            reason: "methodNotAllowed",
            status: "INVALID_ARGUMENT",
        });
    }
    check_api_key(service, &req)?;
    let path = req.uri().path().to_owned();
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY)
        .await
        .map_err(|_| ApiError::bad_request("Request body is too large."))?;
    let body = parse_body(&bytes, is_form)?;
    let now = mint_now();
    if path == SIGN_UP_PATH {
        sign_up(service, &body, now)
    } else {
        refresh(service, &body, now)
    }
}

/// `?key=` or `X-Goog-Api-Key`, as Google takes it. Missing: 403, as Google answers; wrong
/// (when the server was given one with `--api-key`): 400.
fn check_api_key(service: &IdentityService, req: &Request) -> Result<(), ApiError> {
    let from_query = req.uri().query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "key")
            .map(|(_, v)| v.into_owned())
    });
    let from_header = req
        .headers()
        .get("x-goog-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match from_query.or(from_header).filter(|k| !k.is_empty()) {
        None => Err(ApiError {
            code: StatusCode::FORBIDDEN,
            message: "The request is missing a valid API key.".into(),
            reason: "forbidden",
            status: "PERMISSION_DENIED",
        }),
        Some(k) if !service.api_key_ok(&k) => Err(ApiError {
            code: StatusCode::BAD_REQUEST,
            message: "API key not valid. Please pass a valid API key.".into(),
            reason: "badRequest",
            status: "INVALID_ARGUMENT",
        }),
        Some(_) => Ok(()),
    }
}

/// A JSON object, or form fields as one (the token endpoint takes both); empty is `{}`.
fn parse_body(bytes: &[u8], is_form: bool) -> Result<serde_json::Map<String, Value>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    if is_form {
        return Ok(form_urlencoded::parse(bytes)
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect());
    }
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(ApiError::bad_request(
            "Invalid JSON payload received. Expected a JSON object.",
        )),
    }
}

fn sign_up(
    service: &IdentityService,
    body: &serde_json::Map<String, Value>,
    now: u64,
) -> Result<Response, ApiError> {
    // Email/password and phone sign-up are Firebase's other providers, not enabled here.
    if body.contains_key("email") || body.contains_key("password") {
        return Err(ApiError::bad_request("OPERATION_NOT_ALLOWED"));
    }
    let tokens = service.sign_up(now).map_err(|e| {
        tracing::error!(error = %e, "sign-up could not be stored");
        ApiError {
            code: StatusCode::INTERNAL_SERVER_ERROR,
            message: "INTERNAL_ERROR".into(),
            reason: "backendError",
            status: "INTERNAL",
        }
    })?;
    tracing::info!(uid = %tokens.uid, "new anonymous user");
    let Tokens {
        uid,
        id_token,
        refresh_token,
        expires_in,
    } = tokens;
    Ok(json(
        StatusCode::OK,
        &json!({
            "kind": "identitytoolkit#SignupNewUserResponse",
            "idToken": id_token,
            "refreshToken": refresh_token,
            "expiresIn": expires_in.to_string(),
            "localId": uid,
        }),
    ))
}

fn field<'a>(
    body: &'a serde_json::Map<String, Value>,
    snake: &str,
    camel: &str,
) -> Option<&'a str> {
    body.get(snake)
        .or_else(|| body.get(camel))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn refresh(
    service: &IdentityService,
    body: &serde_json::Map<String, Value>,
    now: u64,
) -> Result<Response, ApiError> {
    let grant = field(body, "grant_type", "grantType")
        .ok_or_else(|| ApiError::bad_request("MISSING_GRANT_TYPE"))?;
    if grant != "refresh_token" {
        return Err(ApiError::bad_request("INVALID_GRANT_TYPE"));
    }
    let refresh_token = field(body, "refresh_token", "refreshToken")
        .ok_or_else(|| ApiError::bad_request("MISSING_REFRESH_TOKEN"))?;
    let tokens = service
        .refresh(refresh_token, now)
        .ok_or_else(|| ApiError::bad_request("INVALID_REFRESH_TOKEN"))?;
    Ok(json(
        StatusCode::OK,
        &json!({
            "access_token": tokens.id_token,
            "expires_in": tokens.expires_in.to_string(),
            "token_type": "Bearer",
            "refresh_token": tokens.refresh_token,
            "id_token": tokens.id_token,
            "user_id": tokens.uid,
            "project_id": service.project_id(),
        }),
    ))
}
