//! REST behaviour of huddle-db against Firebase's, over a real socket on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Answer, Rest};
use serde_json::{json, Value};

const PUSH_ALPHABET: &str = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";

async fn open_server() -> (tempfile::TempDir, rtdb::Server, Rest) {
    let (dir, server) = common::start_default().await;
    let rest = Rest::new(&server.url());
    (dir, server, rest)
}

fn assert_bad_request(a: &Answer, what: &str) -> String {
    assert_eq!(
        a.status, 400,
        "{what}: expected 400, got {} {}",
        a.status, a.text
    );
    let msg = a.error();
    assert!(!msg.is_empty(), "{what}: empty error message");
    msg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_missing_path_is_200_null() {
    let (_dir, _server, rest) = open_server().await;
    let a = rest.send("GET", "/nothing/here", None, &[]).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json(), Value::Null);
    assert!(a
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(rest.get("/").await, Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_echoes_and_stores() {
    let (_dir, _server, rest) = open_server().await;
    let v = json!({"name": "Ada", "age": 36, "ok": true, "f": 1.5, "nested": {"deep": "x"}});
    assert_eq!(rest.put("/users/ada", &v).await, v);
    assert_eq!(rest.get("/users/ada").await, v);
    assert_eq!(rest.get("/users/ada/nested/deep").await, json!("x"));
    assert_eq!(rest.get("/users").await, json!({"ada": v}));
    // Scalars at any level, and replacing an object with a scalar.
    assert_eq!(
        rest.put("/users/ada", &json!("just a string")).await,
        json!("just a string")
    );
    assert_eq!(rest.get("/users").await, json!({"ada": "just a string"}));
    // Writing below a leaf replaces the leaf.
    rest.put("/users/ada/x", &json!(1)).await;
    assert_eq!(rest.get("/users/ada").await, json!({"x": 1}));
    // Parameters real clients send that change nothing here are accepted.
    for q in [
        "ns=demo",
        "timeout=5s",
        "writeSizeLimit=unlimited",
        "unknownParam=1",
    ] {
        let a = rest.send("GET", &format!("/users?{q}"), None, &[]).await;
        assert_eq!(a.status, 200, "{q}: {}", a.text);
        assert_eq!(a.json(), json!({"ada": {"x": 1}}), "{q}");
        let w = rest
            .send("PUT", &format!("/users/ada/x?{q}"), Some("1"), &[])
            .await;
        assert_eq!(w.status, 200, "PUT with {q}: {}", w.text);
    }
    // Percent-encoded non-ASCII keys round-trip.
    rest.put("/caf%C3%A9%20x", &json!(7)).await;
    assert_eq!(rest.get("/").await["café x"], json!(7));
}

/// Writes that arrive together are made durable together (one fsync), and their answers are
/// read after the write lock is released; each PUT still answers with what it stored, and the
/// ETag of that, not with what a later PUT of the same batch put there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn puts_of_one_batch_each_answer_with_their_own_value() {
    let (_dir, server, _rest) = open_server().await;
    let db = server.db();
    let mut answers = Vec::new();
    for i in 0..300 {
        let db = db.clone();
        answers.push(tokio::spawn(async move {
            let path = rtdb::DbPath::parse(if i % 2 == 0 { "/same" } else { "/same/below" });
            let op = rtdb::WriteOp::Set {
                path: path.unwrap(),
                value: json!({ "i": i, "list": [i, i + 1] }),
                if_match: None,
            };
            (i, db.write(op).await.unwrap())
        }));
    }
    for answer in answers {
        let (i, result) = answer.await.unwrap();
        let rtdb::WriteResult::Set { value, etag } = result else {
            panic!("a PUT answered {result:?}");
        };
        let expected = json!({ "i": i, "list": [i, i + 1] });
        assert_eq!(serde_json::from_str::<Value>(&value).unwrap(), expected);
        let stored = serde_json::to_string(&json!({ "i": i, "list": {"0": i, "1": i + 1} }));
        assert_eq!(
            etag,
            rtdb::db::etag(Some(&serde_json::from_str(&stored.unwrap()).unwrap()))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_returns_push_ids_that_sort_by_creation() {
    let (_dir, _server, rest) = open_server().await;
    let mut names = Vec::new();
    for i in 0..30 {
        let name = rest.post("/list", &json!({"i": i})).await;
        assert_eq!(name.len(), 20, "push id {name:?}");
        assert!(
            name.chars().all(|c| PUSH_ALPHABET.contains(c)),
            "push id {name:?}"
        );
        names.push(name);
    }
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(sorted, names, "push ids must sort in creation order");
    sorted.dedup();
    assert_eq!(sorted.len(), names.len(), "push ids must be unique");
    let list = rest.get("/list").await;
    let obj = list.as_object().unwrap();
    assert_eq!(obj.len(), 30);
    for (i, name) in names.iter().enumerate() {
        assert_eq!(obj[name], json!({"i": i}));
    }
    // The 8-character prefix is the creation time in ms, most significant first.
    let decode = |id: &str| {
        id[..8].chars().fold(0u64, |acc, c| {
            acc * 64 + PUSH_ALPHABET.find(c).unwrap() as u64
        })
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let t = decode(&names[29]);
    assert!(
        now.abs_diff(t) < 60_000,
        "push id time {t} is not close to now {now}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_is_a_multi_path_atomic_update() {
    let (_dir, _server, rest) = open_server().await;
    rest.put("/p", &json!({"a": {"keep": 0}, "c": 1, "d": 2}))
        .await;
    let echo = rest
        .patch("/p", &json!({"a/b": 1, "c": null, "e/f/g": "x"}))
        .await;
    assert_eq!(echo, json!({"a/b": 1, "c": null, "e/f/g": "x"}));
    assert_eq!(
        rest.get("/p").await,
        json!({"a": {"keep": 0, "b": 1}, "d": 2, "e": {"f": {"g": "x"}}})
    );
    // A PATCH replaces each named child entirely (shallow merge).
    rest.patch("/p", &json!({"a": {"z": 9}})).await;
    assert_eq!(rest.get("/p/a").await, json!({"z": 9}));
    // PATCH at the root.
    rest.patch("/", &json!({"p/d": 3, "q": true})).await;
    assert_eq!(rest.get("/p/d").await, json!(3));
    assert_eq!(rest.get("/q").await, json!(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_with_ancestor_and_descendant_keys_is_rejected_whole() {
    let (_dir, _server, rest) = open_server().await;
    let before = json!({"a": {"b": 1}, "other": 5});
    rest.put("/p", &before).await;
    for body in [
        json!({"other": 6, "a": {"x": 1}, "a/b": 2}),
        json!({"a/b": 2, "a": null, "other": 7}),
        json!({"a/b/c": 3, "a/b": 4}),
    ] {
        let a = rest.send("PATCH", "/p", Some(&body.to_string()), &[]).await;
        assert_bad_request(&a, &format!("PATCH {body}"));
        assert_eq!(
            rest.get("/p").await,
            before,
            "nothing of {body} may be applied"
        );
    }
    // Invalid keys in a PATCH: also nothing applied.
    let a = rest
        .send("PATCH", "/p", Some(r#"{"other": 8, "bad.key": 1}"#), &[])
        .await;
    assert_bad_request(&a, "PATCH with bad key");
    // A PATCH body must be an object.
    let a = rest.send("PATCH", "/p", Some("[1,2]"), &[]).await;
    assert_bad_request(&a, "PATCH with an array");
    assert_eq!(rest.get("/p").await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_answers_null_and_removes() {
    let (_dir, _server, rest) = open_server().await;
    rest.put("/d", &json!({"x": 1, "y": 2})).await;
    assert_eq!(rest.delete("/d/x").await, Value::Null);
    assert_eq!(rest.get("/d").await, json!({"y": 2}));
    assert_eq!(rest.delete("/d").await, Value::Null);
    assert_eq!(rest.get("/d").await, Value::Null);
    // Deleting what is not there is fine.
    assert_eq!(rest.delete("/never/was").await, Value::Null);
    // PUT null deletes too.
    rest.put("/n", &json!(1)).await;
    assert_eq!(rest.put("/n", &Value::Null).await, Value::Null);
    assert_eq!(rest.get("/").await, Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_override_on_post() {
    let (_dir, _server, rest) = open_server().await;
    let put = rest
        .send(
            "POST",
            "/mo",
            Some(r#"{"a":1}"#),
            &[("X-HTTP-Method-Override", "PUT")],
        )
        .await;
    assert_eq!(put.status, 200);
    assert_eq!(put.json(), json!({"a": 1}));
    assert_eq!(
        rest.get("/mo").await,
        json!({"a": 1}),
        "an overridden PUT must not push"
    );
    let patch = rest
        .send(
            "POST",
            "/mo",
            Some(r#"{"b":2}"#),
            &[("X-HTTP-Method-Override", "PATCH")],
        )
        .await;
    assert_eq!(patch.status, 200);
    assert_eq!(rest.get("/mo").await, json!({"a": 1, "b": 2}));
    let del = rest
        .send("POST", "/mo", None, &[("X-HTTP-Method-Override", "DELETE")])
        .await;
    assert_eq!(del.status, 200);
    assert_eq!(del.json(), Value::Null);
    assert_eq!(rest.get("/mo").await, Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn print_pretty_and_silent() {
    let (_dir, _server, rest) = open_server().await;
    let v = json!({"a": {"b": [1, 2]}, "c": "d"});
    rest.put("/pp", &v).await;
    let a = rest.send("GET", "/pp?print=pretty", None, &[]).await;
    assert_eq!(a.status, 200);
    assert!(
        a.text.contains('\n') && a.text.contains("\n  \""),
        "not indented: {:?}",
        a.text
    );
    assert_eq!(a.json(), v);
    let compact = rest.send("GET", "/pp", None, &[]).await;
    assert!(!compact.text.contains('\n'));

    for (method, path, body) in [
        ("PUT", "/silent?print=silent", Some(r#"{"x":1}"#)),
        ("PATCH", "/silent?print=silent", Some(r#"{"y":2}"#)),
        ("POST", "/silent/list?print=silent", Some("3")),
        ("DELETE", "/silent/x?print=silent", None),
    ] {
        let a = rest.send(method, path, body, &[]).await;
        assert_eq!(a.status, 204, "{method} {path}");
        assert!(a.text.is_empty(), "{method} {path} answered {:?}", a.text);
    }
    let stored = rest.get("/silent").await;
    assert_eq!(stored["y"], json!(2));
    assert!(stored.get("x").is_none());
    assert_eq!(stored["list"].as_object().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shallow_and_format_export() {
    let (_dir, _server, rest) = open_server().await;
    let v = json!({"a": {"x": {"deep": 1}}, "b": {"y": 2}, "c": {"z": "s"}});
    rest.put("/s", &v).await;
    assert_eq!(
        rest.get("/s?shallow=true").await,
        json!({"a": true, "b": true, "c": true})
    );
    // A primitive is returned as is.
    assert_eq!(rest.get("/s/c/z?shallow=true").await, json!("s"));
    assert_eq!(rest.get("/nothing?shallow=true").await, Value::Null);
    // format=export is accepted and (with no priorities stored) gives the data.
    assert_eq!(rest.get("/s?format=export").await, v);
    assert_eq!(rest.get("/s/b?format=export").await, json!({"y": 2}));
}

async fn query(rest: &Rest, path: &str, params: &[(&str, &str)]) -> Answer {
    let url = rest.url(path);
    let resp = rest.client.get(url).query(params).send().await.unwrap();
    Answer::read(resp).await
}

async fn query_ok(rest: &Rest, path: &str, params: &[(&str, &str)]) -> Value {
    let a = query(rest, path, params).await;
    assert_eq!(a.status, 200, "query {params:?}: {}", a.text);
    a.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_by_child_key_and_value_with_ranges_and_limits() {
    let (_dir, _server, rest) = open_server().await;
    rest.put(
        "/people",
        &json!({
            "a": {"age": 30, "meta": {"rank": 3}},
            "b": {"age": 20, "meta": {"rank": 1}},
            "c": {"age": 25, "meta": {"rank": 4}},
            "d": {"age": 40, "meta": {"rank": 2}},
            "e": {"name": "no age"}
        }),
    )
    .await;
    let keys = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        k.sort();
        k
    };
    let age = r#""age""#;
    let v = query_ok(
        &rest,
        "/people",
        &[("orderBy", age), ("startAt", "21"), ("endAt", "35")],
    )
    .await;
    assert_eq!(keys(&v), ["a", "c"]);
    assert_eq!(v["c"], json!({"age": 25, "meta": {"rank": 4}}));
    // Children without the field sort first (as null).
    let v = query_ok(&rest, "/people", &[("orderBy", age), ("limitToFirst", "2")]).await;
    assert_eq!(keys(&v), ["b", "e"]);
    let v = query_ok(&rest, "/people", &[("orderBy", age), ("limitToLast", "2")]).await;
    assert_eq!(keys(&v), ["a", "d"]);
    let v = query_ok(&rest, "/people", &[("orderBy", age), ("equalTo", "25")]).await;
    assert_eq!(keys(&v), ["c"]);
    let v = query_ok(
        &rest,
        "/people",
        &[("orderBy", age), ("startAt", "21"), ("limitToFirst", "1")],
    )
    .await;
    assert_eq!(keys(&v), ["c"]);
    // A nested child path.
    let v = query_ok(
        &rest,
        "/people",
        &[("orderBy", r#""meta/rank""#), ("limitToFirst", "2")],
    )
    .await;
    assert_eq!(keys(&v), ["b", "e"], "e has no meta/rank and sorts first");
    let v = query_ok(
        &rest,
        "/people",
        &[
            ("orderBy", r#""meta/rank""#),
            ("startAt", "2"),
            ("endAt", "3"),
        ],
    )
    .await;
    assert_eq!(keys(&v), ["a", "d"]);
    // Nothing matches: null.
    let v = query_ok(&rest, "/people", &[("orderBy", age), ("startAt", "100")]).await;
    assert_eq!(v, Value::Null);

    // $key.
    let key = r#""$key""#;
    let v = query_ok(
        &rest,
        "/people",
        &[("orderBy", key), ("startAt", r#""b""#), ("endAt", r#""c""#)],
    )
    .await;
    assert_eq!(keys(&v), ["b", "c"]);
    let v = query_ok(&rest, "/people", &[("orderBy", key), ("limitToLast", "2")]).await;
    assert_eq!(keys(&v), ["d", "e"]);
    let v = query_ok(&rest, "/people", &[("orderBy", key), ("equalTo", r#""a""#)]).await;
    assert_eq!(keys(&v), ["a"]);
    // Integer keys sort numerically before the others.
    rest.put("/nums", &json!({"10": 1, "9": 2, "x": 3, "100": 4}))
        .await;
    let v = query_ok(&rest, "/nums", &[("orderBy", key), ("limitToFirst", "2")]).await;
    assert_eq!(keys(&v), ["10", "9"]);
    let v = query_ok(&rest, "/nums", &[("orderBy", key), ("limitToLast", "1")]).await;
    assert_eq!(keys(&v), ["x"]);

    // $value.
    rest.put(
        "/scores",
        &json!({"x": 3, "y": 1, "z": 2, "w": "text", "v": true}),
    )
    .await;
    let value = r#""$value""#;
    let v = query_ok(
        &rest,
        "/scores",
        &[("orderBy", value), ("limitToFirst", "2")],
    )
    .await;
    assert_eq!(keys(&v), ["v", "y"], "true sorts before numbers");
    let v = query_ok(
        &rest,
        "/scores",
        &[("orderBy", value), ("startAt", "2"), ("endAt", "3")],
    )
    .await;
    assert_eq!(v, json!({"z": 2, "x": 3}));
    let v = query_ok(&rest, "/scores", &[("orderBy", value), ("equalTo", "2")]).await;
    assert_eq!(v, json!({"z": 2}));
    let v = query_ok(
        &rest,
        "/scores",
        &[("orderBy", value), ("limitToLast", "1")],
    )
    .await;
    assert_eq!(v, json!({"w": "text"}), "strings sort after numbers");
    let v = query_ok(
        &rest,
        "/scores",
        &[("orderBy", value), ("equalTo", r#""text""#)],
    )
    .await;
    assert_eq!(v, json!({"w": "text"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_parameter_errors_use_firebase_messages() {
    let (_dir, _server, rest) = open_server().await;
    rest.put("/q", &json!({"a": 1})).await;
    for params in [
        vec![("limitToFirst", "1")],
        vec![("limitToLast", "1")],
        vec![("startAt", "1")],
        vec![("endAt", "1")],
        vec![("equalTo", r#""a""#)],
    ] {
        let a = query(&rest, "/q", &params).await;
        assert_eq!(a.status, 400, "{params:?}");
        assert_eq!(
            a.json(),
            json!({"error": "orderBy must be defined when other query parameters are defined"})
        );
    }
    for order in ["$key", "age", "$value", "{}", "1"] {
        let a = query(&rest, "/q", &[("orderBy", order), ("limitToFirst", "1")]).await;
        assert_eq!(a.status, 400, "orderBy={order}");
        assert_eq!(
            a.json(),
            json!({"error": "orderBy must be a valid JSON encoded path"}),
            "orderBy={order}"
        );
    }
    // Other malformed filters are 400s with a message.
    for params in [
        vec![("orderBy", r#""$key""#), ("limitToFirst", "0")],
        vec![("orderBy", r#""$key""#), ("limitToFirst", "x")],
        vec![
            ("orderBy", r#""$key""#),
            ("limitToFirst", "1"),
            ("limitToLast", "1"),
        ],
        vec![("orderBy", r#""a""#), ("startAt", "unquoted")],
        vec![("print", "loud")],
    ] {
        let a = query(&rest, "/q", &params).await;
        assert_bad_request(&a, &format!("{params:?}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etags_conditional_writes_and_reads() {
    let (_dir, _server, rest) = open_server().await;
    rest.put("/e", &json!({"v": 1})).await;
    let g = rest
        .send("GET", "/e", None, &[("X-Firebase-ETag", "true")])
        .await;
    assert_eq!(g.status, 200);
    assert_eq!(g.json(), json!({"v": 1}));
    let e1 = g
        .header("etag")
        .expect("ETag header when X-Firebase-ETag: true");
    assert!(!e1.is_empty());
    // The same value gives the same tag.
    let again = rest
        .send("GET", "/e", None, &[("X-Firebase-ETag", "true")])
        .await;
    assert_eq!(again.header("etag").unwrap(), e1);

    // Matching if-match: the write happens and answers the new tag.
    let w = rest
        .send("PUT", "/e", Some(r#"{"v":2}"#), &[("if-match", &e1)])
        .await;
    assert_eq!(w.status, 200, "{}", w.text);
    assert_eq!(w.json(), json!({"v": 2}));
    let e2 = rest
        .send("GET", "/e", None, &[("X-Firebase-ETag", "true")])
        .await
        .header("etag")
        .unwrap();
    assert_ne!(e1, e2);
    if let Some(tag) = w.header("etag") {
        assert_eq!(tag, e2, "the ETag answered by a write is the new value's");
    }

    // Stale if-match: 412, current value as the body, current tag in the header; nothing written.
    let stale = rest
        .send("PUT", "/e", Some(r#"{"v":3}"#), &[("if-match", &e1)])
        .await;
    assert_eq!(stale.status, 412);
    assert_eq!(stale.json(), json!({"v": 2}));
    assert_eq!(stale.header("etag").unwrap(), e2);
    let stale_del = rest.send("DELETE", "/e", None, &[("if-match", &e1)]).await;
    assert_eq!(stale_del.status, 412);
    assert_eq!(stale_del.json(), json!({"v": 2}));
    assert_eq!(rest.get("/e").await, json!({"v": 2}));
    // A matching DELETE deletes.
    let del = rest.send("DELETE", "/e", None, &[("if-match", &e2)]).await;
    assert_eq!(del.status, 200);
    assert_eq!(rest.get("/e").await, Value::Null);

    // null_etag: the tag of an absent location; "create only if absent".
    let absent = rest
        .send("GET", "/new", None, &[("X-Firebase-ETag", "true")])
        .await;
    assert_eq!(absent.header("etag").unwrap(), "null_etag");
    let create = rest
        .send(
            "PUT",
            "/new",
            Some(r#""first""#),
            &[("if-match", "null_etag")],
        )
        .await;
    assert_eq!(create.status, 200);
    let second = rest
        .send(
            "PUT",
            "/new",
            Some(r#""second""#),
            &[("if-match", "null_etag")],
        )
        .await;
    assert_eq!(second.status, 412);
    assert_eq!(second.json(), json!("first"));
    assert_ne!(second.header("etag").unwrap(), "null_etag");
    assert_eq!(rest.get("/new").await, json!("first"));

    // if-none-match: 304 when unchanged, 200 with the value when changed.
    let tag = rest
        .send("GET", "/new", None, &[("X-Firebase-ETag", "true")])
        .await
        .header("etag")
        .unwrap();
    let nm = rest
        .send("GET", "/new", None, &[("if-none-match", &tag)])
        .await;
    assert_eq!(nm.status, 304);
    assert!(nm.text.is_empty());
    let changed = rest
        .send("GET", "/new", None, &[("if-none-match", "something-else")])
        .await;
    assert_eq!(changed.status, 200);
    assert_eq!(changed.json(), json!("first"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etag_race_has_exactly_one_winner() {
    let (_dir, _server, rest) = open_server().await;
    let rest = std::sync::Arc::new(rest);
    for round in 0..10 {
        rest.put("/race", &json!({"round": round, "by": "init"}))
            .await;
        let tag = rest
            .send("GET", "/race", None, &[("X-Firebase-ETag", "true")])
            .await
            .header("etag")
            .unwrap();
        let mut tasks = Vec::new();
        for who in ["w1", "w2"] {
            let rest = rest.clone();
            let tag = tag.clone();
            let body = json!({"round": round, "by": who}).to_string();
            tasks.push(tokio::spawn(async move {
                let a = rest
                    .send("PUT", "/race", Some(&body), &[("if-match", &tag)])
                    .await;
                (who, a.status.as_u16(), a.text)
            }));
        }
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.unwrap());
        }
        let mut statuses: Vec<u16> = results.iter().map(|r| r.1).collect();
        statuses.sort();
        assert_eq!(statuses, [200, 412], "round {round}: {results:?}");
        let winner = results.iter().find(|r| r.1 == 200).unwrap().0;
        let loser = results.iter().find(|r| r.1 == 412).unwrap();
        let final_value = rest.get("/race").await;
        assert_eq!(final_value, json!({"round": round, "by": winner}));
        // The loser is told what won.
        assert_eq!(
            serde_json::from_str::<Value>(&loser.2).unwrap(),
            final_value
        );
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_timestamp() {
    let (_dir, _server, rest) = open_server().await;
    let before = now_ms();
    let echo = rest.put("/t", &json!({".sv": "timestamp"})).await;
    let after = now_ms();
    let t = echo
        .as_i64()
        .unwrap_or_else(|| panic!("timestamp answered {echo}"));
    assert!(
        t >= before - 1000 && t <= after + 1000,
        "{t} not in [{before}, {after}]"
    );
    assert_eq!(rest.get("/t").await, echo);
    // Nested, and through PATCH and POST.
    rest.put("/obj", &json!({"at": {".sv": "timestamp"}, "n": 1}))
        .await;
    let stored = rest.get("/obj").await;
    assert!((stored["at"].as_i64().unwrap() - now_ms()).abs() < 10_000);
    assert_eq!(stored["n"], json!(1));
    rest.patch("/obj", &json!({"seen": {".sv": "timestamp"}}))
        .await;
    assert!((rest.get("/obj/seen").await.as_i64().unwrap() - now_ms()).abs() < 10_000);
    let id = rest
        .post("/log", &json!({"at": {".sv": "timestamp"}}))
        .await;
    assert!((rest.get(&format!("/log/{id}/at")).await.as_i64().unwrap() - now_ms()).abs() < 10_000);
    // Unknown server values are rejected.
    let a = rest
        .send("PUT", "/bad", Some(r#"{".sv":"bogus"}"#), &[])
        .await;
    assert_bad_request(&a, "unknown .sv");
    assert_eq!(rest.get("/bad").await, Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_increment() {
    let (_dir, _server, rest) = open_server().await;
    let inc = |n: i64| json!({".sv": {"increment": n}});
    // Absent: becomes the delta.
    assert_eq!(rest.put("/cnt", &inc(5)).await, json!(5));
    assert_eq!(rest.put("/cnt", &inc(2)).await, json!(7));
    assert_eq!(rest.put("/cnt", &inc(-10)).await, json!(-3));
    assert_eq!(rest.get("/cnt").await, json!(-3));
    // Not a number: becomes the delta.
    rest.put("/s", &json!("text")).await;
    assert_eq!(rest.put("/s", &inc(4)).await, json!(4));
    // Floats.
    rest.put("/f", &json!(1.5)).await;
    assert_eq!(
        rest.put("/f", &json!({".sv": {"increment": 1}})).await,
        json!(2.5)
    );
    // Inside an object and via PATCH.
    rest.put("/o", &json!({"likes": 10})).await;
    rest.patch("/o", &json!({"likes": inc(1), "views": inc(3)}))
        .await;
    assert_eq!(rest.get("/o").await, json!({"likes": 11, "views": 3}));
    // A non-number delta is rejected.
    let a = rest
        .send("PUT", "/cnt", Some(r#"{".sv":{"increment":"1"}}"#), &[])
        .await;
    assert_bad_request(&a, "string increment");
    assert_eq!(rest.get("/cnt").await, json!(-3));
    // A sum past every double is refused and the value kept (it used to be stored as null,
    // which deleted it).
    let big = r#"{".sv":{"increment":1e308}}"#;
    assert_eq!(
        rest.send("PUT", "/huge", Some(big), &[]).await.json(),
        json!(1e308)
    );
    let a = rest.send("PUT", "/huge", Some(big), &[]).await;
    let msg = assert_bad_request(&a, "overflowing increment");
    assert!(msg.contains("too large"), "{msg}");
    assert_eq!(rest.get("/huge").await, json!(1e308));
    // Integers stay exact up to 2^53 - 1, as every SDK reads them as doubles; past it, floats.
    rest.put("/n", &json!(9_007_199_254_740_990_i64)).await;
    assert_eq!(
        rest.put("/n", &inc(1)).await,
        json!(9_007_199_254_740_991_i64)
    );
    assert!(rest.put("/n", &inc(1)).await.is_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_is_a_get_without_the_body() {
    let (_dir, _server, rest) = open_server().await;
    rest.put("/h", &json!({"a": 1, "b": "two"})).await;
    let get = rest.send("GET", "/h", None, &[]).await;
    let head = rest.send("HEAD", "/h", None, &[]).await;
    assert_eq!(head.status, 200, "{}", head.text);
    assert_eq!(head.text, "", "HEAD carries no body");
    assert_eq!(
        head.headers
            .get("content-length")
            .and_then(|v| v.to_str().ok()),
        Some(get.text.len().to_string().as_str()),
        "HEAD says how long the GET body is"
    );
    assert_eq!(
        head.headers.get("content-type"),
        get.headers.get("content-type")
    );
    // The same checks as a GET: a bad path is a 400, without a body.
    let bad = rest.send("HEAD", "/h.x", None, &[]).await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.text, "");
    // A stream asked for by HEAD ends at once instead of staying open.
    let stream = tokio::time::timeout(
        Duration::from_secs(10),
        rest.send("HEAD", "/h", None, &[("Accept", "text/event-stream")]),
    )
    .await
    .expect("a HEAD stream ends");
    assert_eq!(stream.status, 200);
    assert_eq!(stream.text, "");
    // Browsers are told that HEAD is allowed.
    let pre = rest.send("OPTIONS", "/h", None, &[]).await;
    let allowed = pre.headers["access-control-allow-methods"]
        .to_str()
        .unwrap();
    assert!(allowed.contains("HEAD"), "{allowed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_sum_correctly() {
    let (_dir, _server, rest) = open_server().await;
    let rest = std::sync::Arc::new(rest);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let rest = rest.clone();
        tasks.spawn(async move {
            if i % 2 == 0 {
                rest.put("/counter/n", &json!({".sv": {"increment": 1}}))
                    .await;
            } else {
                rest.patch("/counter", &json!({"n": {".sv": {"increment": 2}}}))
                    .await;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    assert_eq!(rest.get("/counter/n").await, json!(100 + 200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nulls_and_empty_objects_vanish() {
    let (_dir, _server, rest) = open_server().await;
    rest.put(
        "/d",
        &json!({"a": null, "b": {}, "c": {"d": null, "e": {}}, "f": 1}),
    )
    .await;
    assert_eq!(rest.get("/d").await, json!({"f": 1}));
    assert_eq!(rest.get("/d/b").await, Value::Null);
    assert_eq!(rest.get("/d/c").await, Value::Null);
    // An empty object written alone is a delete.
    rest.put("/empty", &json!({})).await;
    assert_eq!(rest.get("/").await, json!({"d": {"f": 1}}));
    // A parent left empty vanishes, up the chain.
    rest.put("/pe/x/y/z", &json!(1)).await;
    assert_eq!(rest.get("/pe").await, json!({"x": {"y": {"z": 1}}}));
    rest.delete("/pe/x/y/z").await;
    assert_eq!(rest.get("/pe").await, Value::Null);
    assert_eq!(rest.get("/").await, json!({"d": {"f": 1}}));
    rest.put("/pe2", &json!({"only": {"child": 1}, "k": 2}))
        .await;
    rest.patch("/pe2", &json!({"only/child": null, "k": null}))
        .await;
    assert_eq!(rest.get("/pe2").await, Value::Null);
    assert_eq!(rest.get("/").await, json!({"d": {"f": 1}}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrays_render_as_arrays_and_sparse_ones_as_objects() {
    let (_dir, _server, rest) = open_server().await;
    assert_eq!(
        rest.put("/arr", &json!([1, "two", {"three": 3}])).await,
        json!([1, "two", {"three": 3}])
    );
    assert_eq!(rest.get("/arr").await, json!([1, "two", {"three": 3}]));
    assert_eq!(rest.get("/arr/1").await, json!("two"));
    assert_eq!(rest.get("/arr/2/three").await, json!(3));
    // Stored as integer keys: children can be addressed and removed.
    rest.delete("/arr/1").await;
    assert_eq!(rest.get("/arr").await, json!([1, null, {"three": 3}]));
    rest.put("/arr/3", &json!("four")).await;
    assert_eq!(
        rest.get("/arr").await,
        json!([1, null, {"three": 3}, "four"])
    );
    // Nulls inside a written array leave holes.
    rest.put("/holes", &json!(["a", null, "c"])).await;
    assert_eq!(rest.get("/holes").await, json!(["a", null, "c"]));
    // Sparse: at most half full -> an object.
    rest.put("/sp", &json!({"0": "a", "5": "f"})).await;
    assert_eq!(rest.get("/sp").await, json!({"0": "a", "5": "f"}));
    rest.put("/sp2", &json!(["a", "b"])).await;
    rest.put("/sp2/10", &json!("k")).await;
    assert_eq!(
        rest.get("/sp2").await,
        json!({"0": "a", "1": "b", "10": "k"})
    );
    // Integer-keyed objects that are dense enough come back as arrays.
    rest.put("/dense", &json!({"0": "a", "1": "b", "3": "d"}))
        .await;
    assert_eq!(rest.get("/dense").await, json!(["a", "b", null, "d"]));
    // Keys with leading zeros are not array indexes.
    rest.put("/lz", &json!({"0": 1, "01": 2})).await;
    assert_eq!(rest.get("/lz").await, json!({"0": 1, "01": 2}));
    // Nested arrays.
    rest.put("/nested", &json!({"m": [[1, 2], [3]]})).await;
    assert_eq!(rest.get("/nested").await, json!({"m": [[1, 2], [3]]}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_keys_are_rejected() {
    let (_dir, _server, rest) = open_server().await;
    let long = "k".repeat(769);
    let bad_keys: Vec<String> = [
        ".",
        "a.b",
        "$",
        "x$",
        "#",
        "[",
        "]",
        "a]b",
        "a/b",
        "\u{1}",
        "tab\there",
        "nl\n",
        "del\u{7f}",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(std::iter::once(long))
    .collect();
    for key in &bad_keys {
        let body = json!({ "ok": 1, "nested": { key.clone(): 1 } }).to_string();
        let a = rest.send("PUT", "/k", Some(&body), &[]).await;
        assert_bad_request(&a, &format!("key {key:?}"));
        let body = json!({ key.clone(): 1 }).to_string();
        let a = rest.send("POST", "/k", Some(&body), &[]).await;
        assert_bad_request(&a, &format!("POST key {key:?}"));
    }
    assert_eq!(
        rest.get("/k").await,
        Value::Null,
        "nothing of a rejected write is stored"
    );
    // 768 bytes is allowed, counted in UTF-8 bytes.
    let max = "k".repeat(768);
    rest.put("/k", &json!({ max.clone(): 1 })).await;
    assert_eq!(rest.get("/k").await, json!({ max: 1 }));
    let multibyte = "é".repeat(385); // 770 bytes
    let a = rest
        .send(
            "PUT",
            "/k2",
            Some(&json!({ multibyte: 1 }).to_string()),
            &[],
        )
        .await;
    assert_bad_request(&a, "770-byte key");
    // Bad keys in the URL path.
    for path in ["/a%24b", "/a%23b", "/a%5Bb", "/a%5Db", "/a%01b"] {
        let a = rest.send("PUT", path, Some("1"), &[]).await;
        assert_bad_request(&a, &format!("path {path}"));
    }
}

fn nested(levels: usize) -> String {
    format!("{}1{}", r#"{"k":"#.repeat(levels), "}".repeat(levels))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nesting_deeper_than_32_is_rejected() {
    let (_dir, _server, rest) = open_server().await;
    // 31 keys deep from the root: fine.
    let a = rest.send("PUT", "/", Some(&nested(31)), &[]).await;
    assert_eq!(a.status, 200, "{}", a.text);
    rest.delete("/").await;
    for (path, levels) in [("/", 33), ("/", 40), ("/a/b", 31), ("/", 500)] {
        let a = rest.send("PUT", path, Some(&nested(levels)), &[]).await;
        assert_bad_request(&a, &format!("{levels} levels at {path}"));
    }
    let deep_path = format!("/{}", vec!["k"; 33].join("/"));
    let a = rest.send("PUT", &deep_path, Some("1"), &[]).await;
    assert_bad_request(&a, "33-segment path");
    assert_eq!(rest.get("/").await, Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_rejected_with_firebase_message() {
    let (_dir, _server, rest) = open_server().await;
    for body in ["dddd", "{\"a\":", "{'a': 1}", "[1,]", "{\"a\":1}}"] {
        for method in ["PUT", "POST", "PATCH"] {
            let a = rest.send(method, "/m", Some(body), &[]).await;
            assert_eq!(a.status, 400, "{method} {body:?}: {}", a.text);
            assert_eq!(
                a.json(),
                json!({"error": "Invalid data; couldn't parse JSON object, array, or value."}),
                "{method} {body:?}"
            );
        }
    }
    assert_eq!(rest.get("/m").await, Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_bodies() {
    let (_dir, _server, rest) = open_server().await;
    // Well under 16 MiB: accepted (beyond common 2 MiB framework defaults).
    let five_mb = "x".repeat(5 << 20);
    let a = rest
        .send("PUT", "/big", Some(&json!({"s": five_mb}).to_string()), &[])
        .await;
    assert_eq!(
        a.status,
        200,
        "a 5 MiB body must be accepted: {}",
        &a.text[..a.text.len().min(200)]
    );
    assert_eq!(rest.get("/big/s").await.as_str().unwrap().len(), 5 << 20);
    // Over 16 MiB: 400.
    let over = format!("\"{}\"", "y".repeat((16 << 20) + 10));
    let a = rest.send("PUT", "/big2", Some(&over), &[]).await;
    assert_bad_request(&a, "a body over 16 MiB");
    assert_eq!(rest.get("/big2").await, Value::Null);
    // The server still answers.
    assert_eq!(
        rest.get("/big/s?shallow=true")
            .await
            .as_str()
            .unwrap()
            .len(),
        5 << 20
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_required_by_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::TestServer::spawn(&dir.path().join("data"), &["--secret", "S3cr3t"]);
    assert!(
        server.url.starts_with("http://127.0.0.1:"),
        "{}",
        server.url
    );
    let rest = Rest::new(&server.url);
    for (path, headers) in [
        ("/x", vec![]),
        ("/x?auth=wrong", vec![]),
        ("/x", vec![("Authorization", "Bearer wrong")]),
        ("/x", vec![("Authorization", "Bearer owner")]),
        ("/x?auth=", vec![]),
    ] {
        let a = rest.send("GET", path, None, &headers).await;
        assert_eq!(a.status, 401, "GET {path} {headers:?}: {}", a.text);
        if headers.is_empty() && path == "/x" {
            assert_eq!(a.json(), json!({"error": "Permission denied"}));
        } else {
            assert!(!a.error().is_empty());
        }
        let w = rest.send("PUT", path, Some("1"), &headers).await;
        assert_eq!(w.status, 401, "PUT {path} {headers:?}");
    }
    let a = rest
        .send("PUT", "/x?auth=S3cr3t", Some(r#"{"v":1}"#), &[])
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let a = rest.send("GET", "/x?auth=S3cr3t", None, &[]).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json(), json!({"v": 1}));
    let a = rest
        .send("GET", "/x", None, &[("Authorization", "Bearer S3cr3t")])
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json(), json!({"v": 1}));
    let a = rest.send("GET", "/x?access_token=S3cr3t", None, &[]).await;
    assert_eq!(a.status, 200);
    // Nothing unauthorised was written.
    assert_eq!(a.json(), json!({"v": 1}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_required_in_process_and_open_server_accepts_owner() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start_in_process(rtdb::ServerConfig {
        secret: Some("in-proc".into()),
        ..common::config(dir.path())
    })
    .await;
    let rest = Rest::new(&server.url());
    let a = rest.send("GET", "/", None, &[]).await;
    assert_eq!(a.status, 401);
    assert_eq!(a.json(), json!({"error": "Permission denied"}));
    assert_eq!(
        rest.send("GET", "/?auth=in-proc", None, &[]).await.status,
        200
    );
    assert_eq!(
        rest.send("GET", "/", None, &[("Authorization", "Bearer in-proc")])
            .await
            .status,
        200
    );

    let (_dir2, _open, rest) = open_server().await;
    let a = rest
        .send("PUT", "/o", Some("1"), &[("Authorization", "Bearer owner")])
        .await;
    assert_eq!(a.status, 200);
    let a = rest
        .send("GET", "/o", None, &[("Authorization", "Bearer owner")])
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json(), json!(1));
    assert_eq!(rest.get("/o").await, json!(1));
}

fn pem_certs(pem: &str) -> Vec<Vec<u8>> {
    use base64::Engine;
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in pem.lines() {
        let line = line.trim();
        if line == "-----BEGIN CERTIFICATE-----" {
            cur = Some(String::new());
        } else if line == "-----END CERTIFICATE-----" {
            let b64 = cur.take().unwrap();
            out.push(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap(),
            );
        } else if let Some(c) = cur.as_mut() {
            c.push_str(line);
        }
    }
    out
}

fn fingerprint(der: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_tls_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start_in_process(rtdb::ServerConfig {
        tls: rtdb::server::TlsMode::Generated,
        ..common::config(dir.path())
    })
    .await;
    let url = server.url();
    assert_eq!(url, format!("https://localhost:{}", server.addr().port()));
    let ca_path = server
        .ca_file()
        .expect("generated TLS has a CA file")
        .to_path_buf();
    let ca_pem = std::fs::read(&ca_path).unwrap();
    let trusting = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca_pem).unwrap())
        .tls_info(true)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let resp = trusting
        .put(format!("{url}/tls.json"))
        .body(r#"{"secure":true}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let leaf = resp
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .expect("peer certificate")
        .to_vec();
    assert_eq!(
        Some(fingerprint(&leaf).as_str()),
        server.fingerprint(),
        "fingerprint is the served leaf's SHA-256"
    );
    let got: Value = trusting
        .get(format!("{url}/tls.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got, json!({"secure": true}));
    // The CA signed the leaf: the CA file is not the leaf itself.
    assert_ne!(pem_certs(&String::from_utf8(ca_pem).unwrap())[0], leaf);

    // Without the CA: the handshake fails.
    let untrusting = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let err = untrusting.get(format!("{url}/tls.json")).send().await;
    assert!(
        err.is_err(),
        "a client without the CA must refuse the certificate"
    );
    // Plain HTTP to the TLS port gets no database answer.
    let plain = common::client()
        .get(format!(
            "http://127.0.0.1:{}/tls.json",
            server.addr().port()
        ))
        .send()
        .await;
    if let Ok(r) = plain {
        assert_ne!(r.status(), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_tls_by_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = common::TestServer::spawn(&data, &["--tls"]);
    assert!(
        server.url.starts_with("https://localhost:"),
        "{}",
        server.url
    );
    let lines = server.stdout_lines(1, Duration::from_secs(5));
    let printed = lines
        .iter()
        .find_map(|l| l.strip_prefix("certificate sha256 fingerprint: "))
        .expect("fingerprint line")
        .trim()
        .to_owned();
    let ca_pem = std::fs::read(data.join("tls").join("ca.pem")).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca_pem).unwrap())
        .tls_info(true)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let resp = client
        .get(format!("{}/.json", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let leaf = resp
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .unwrap()
        .peer_certificate()
        .unwrap()
        .to_vec();
    assert_eq!(fingerprint(&leaf), printed);
    assert_eq!(resp.json::<Value>().await.unwrap(), Value::Null);
    // The certificate on disk is the one served.
    let server_pem = std::fs::read_to_string(data.join("tls").join("server.pem")).unwrap();
    assert_eq!(pem_certs(&server_pem)[0], leaf);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_requests_get_json_errors_and_the_server_keeps_answering() {
    let (_dir, server, rest) = open_server().await;
    rest.put("/alive", &json!(true)).await;
    let base = server.url();
    let cases: Vec<(&str, String)> = vec![
        ("FOO", format!("{base}/a.json")),
        ("BREW", format!("{base}/.json")),
        ("CONNECTX", format!("{base}/x.json")),
        ("GET", format!("{base}/a.b.json")),
        ("PUT", format!("{base}/a.b.json")),
        ("GET", format!("{base}/no-suffix")),
        ("PUT", format!("{base}/no-suffix")),
        ("GET", format!("{base}/")),
        ("GET", format!("{base}/%FF.json")),
        ("GET", format!("{base}/%C3%28.json")),
        ("PUT", format!("{base}/ok/%E2%82.json")),
        ("GET", format!("{base}/a[0].json")),
        ("GET", format!("{base}/a%2Fb%00.json")),
    ];
    for (method, url) in &cases {
        let a = rest.send_url(method, url, Some(b"1".to_vec()), &[]).await;
        assert!(
            a.status.is_client_error(),
            "{method} {url}: {} {}",
            a.status,
            a.text
        );
        assert!(!a.error().is_empty(), "{method} {url}");
    }
    // Unknown override, if-match on the wrong method, a PATCH that is not an object.
    let a = rest
        .send(
            "POST",
            "/a",
            Some("1"),
            &[("X-HTTP-Method-Override", "BOGUS")],
        )
        .await;
    assert!(a.status.is_client_error());
    assert!(!a.error().is_empty());
    let a = rest
        .send(
            "PATCH",
            "/a",
            Some(r#"{"x":1}"#),
            &[("if-match", "null_etag")],
        )
        .await;
    assert_bad_request(&a, "if-match on PATCH");
    let a = rest.send("PATCH", "/a", Some("5"), &[]).await;
    assert_bad_request(&a, "PATCH with a number");

    // Raw garbage on the socket.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    for junk in [
        &b"hello\r\n\r\n"[..],
        b"GET\r\n\r\n",
        b"\x00\x01\x02\xff\r\n\r\n",
        b"GET /x.json HTTP/9.9\r\n\r\n",
    ] {
        let mut s = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
        s.write_all(junk).await.unwrap();
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
        if !buf.is_empty() {
            // 4xx, or hyper's 505 for an unknown HTTP version.
            let ok = buf.starts_with(b"HTTP/1.1 4") || buf.starts_with(b"HTTP/1.1 505");
            assert!(
                ok,
                "junk {junk:?} answered {:?}",
                String::from_utf8_lossy(&buf)
            );
        }
    }
    // A connection that sends half a request and goes away.
    {
        let mut s = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
        s.write_all(b"PUT /half.json HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"a\":")
            .await
            .unwrap();
    }
    assert_eq!(rest.get("/alive").await, json!(true));
    assert_eq!(rest.get("/half").await, Value::Null);
}

/// The browser client is served at `/web/` by the real binary (embedded files, no data folder
/// needed), even when a secret guards the data; `.json` paths under `web` stay database paths.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_client_is_served_at_web() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::TestServer::spawn(&dir.path().join("data"), &["--secret", "S3cr3t"]);
    let rest = Rest::new(&server.url);
    let page = rest
        .send_url(
            "GET",
            &format!("{}/web/?room=abc&name=Ann", server.url),
            None,
            &[],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(page.text.contains(r#"<script type="module" src="app.js">"#));
    for file in [
        "app.js", "room.js", "peer.js", "rtdb.js", "stamp.js", "stats.js",
    ] {
        let js = rest
            .send_url("GET", &format!("{}/web/{file}", server.url), None, &[])
            .await;
        assert_eq!(js.status, 200, "{file}");
        assert!(js
            .header("content-type")
            .unwrap()
            .starts_with("text/javascript"));
        assert!(
            js.text.contains("export") || js.text.contains("import"),
            "{file}"
        );
    }
    let missing = rest
        .send_url("GET", &format!("{}/web/secret.txt", server.url), None, &[])
        .await;
    assert_eq!(missing.status, 404);
    // A database location named `web` is still the database (and still needs the secret).
    let a = rest.send("PUT", "/web/x", Some("1"), &[]).await;
    assert_eq!(a.status, 401);
    let a = rest.send("PUT", "/web/x?auth=S3cr3t", Some("1"), &[]).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        rest.send("GET", "/web/x?auth=S3cr3t", None, &[])
            .await
            .json(),
        json!(1)
    );
}
