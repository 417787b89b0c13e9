//! The browser client (the repository's `web/` folder), embedded in the binary and served at
//! `/web/` so that an installed huddle-db hands guests a working page from the same origin as the
//! database. These paths never end in `.json`, so they cannot shadow a database location.

use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

/// Where the client lives.
pub const PREFIX: &str = "/web/";

/// The embedded files: name under `/web/`, content type, bytes.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "",
        "text/html; charset=utf-8",
        include_bytes!("../../../web/index.html"),
    ),
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../../../web/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../web/app.js"),
    ),
    (
        "auth.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../web/auth.js"),
    ),
    (
        "peer.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../web/peer.js"),
    ),
    (
        "room.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../web/room.js"),
    ),
    (
        "rtdb.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../web/rtdb.js"),
    ),
    (
        "stats.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../web/stats.js"),
    ),
    (
        "stamp.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../web/stamp.js"),
    ),
];

/// The response for `path` if it belongs to the web client (`/web`, `/web/...` not ending in
/// `.json`), or `None` when it is a database request.
pub fn serve(method: &Method, path: &str) -> Option<Response> {
    if path == "/web" {
        let mut resp = StatusCode::MOVED_PERMANENTLY.into_response();
        resp.headers_mut()
            .insert(header::LOCATION, HeaderValue::from_static(PREFIX));
        return Some(resp);
    }
    let name = path.strip_prefix(PREFIX)?;
    if name.ends_with(".json") {
        return None;
    }
    if method != Method::GET && method != Method::HEAD {
        return Some(
            (
                StatusCode::METHOD_NOT_ALLOWED,
                "the web client is read-only",
            )
                .into_response(),
        );
    }
    let Some((_, mime, bytes)) = FILES.iter().find(|(n, _, _)| *n == name) else {
        return Some((StatusCode::NOT_FOUND, "no such file in the web client").into_response());
    };
    let mut resp = (StatusCode::OK, *bytes).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    // Revalidate each time: an upgraded huddle-db must not leave guests on old scripts.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    Some(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn web_paths_are_served_and_database_paths_are_not() {
        let ok = serve(&Method::GET, "/web/").unwrap();
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(
            ok.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        for name in ["app.js", "auth.js", "rtdb.js", "room.js", "peer.js"] {
            let js = serve(&Method::GET, &format!("/web/{name}")).unwrap();
            assert_eq!(js.status(), StatusCode::OK, "{name}");
            assert_eq!(
                js.headers()[header::CONTENT_TYPE],
                "text/javascript; charset=utf-8"
            );
        }
        assert_eq!(
            serve(&Method::GET, "/web").unwrap().status(),
            StatusCode::MOVED_PERMANENTLY
        );
        assert_eq!(
            serve(&Method::GET, "/web/nope.js").unwrap().status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            serve(&Method::PUT, "/web/app.js").unwrap().status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert!(
            serve(&Method::GET, "/web/x.json").is_none(),
            "a database location"
        );
        assert!(serve(&Method::GET, "/web.json").is_none());
        assert!(serve(&Method::GET, "/rooms.json").is_none());
    }
}
