//! The rules engine without a server: parsing, each construct, cascade and validation.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use serde_json::{json, Value};

use super::*;

fn p(s: &str) -> DbPath {
    DbPath::parse(s).unwrap()
}

fn rules(r: Value) -> Rules {
    Rules::parse(&json!({ "rules": r })).unwrap()
}

fn alice() -> Caller {
    Caller::User(Identity::uid("alice"))
}

const NOW: u64 = 1_700_000_000_000;

/// Is the single-expression `.read` at the root true for `caller` over `db`?
fn read_rule(expr: &str, caller: &Caller, db: &Value) -> bool {
    rules(json!({ ".read": expr })).can_read(caller, &DbPath::root(), db, NOW)
}

fn set(r: &Rules, caller: &Caller, db: &Value, path: &str, value: Value) -> bool {
    let value = crate::tree::normalize(value, 0).unwrap();
    r.can_write(caller, db, &[(p(path), value)], NOW)
}

#[test]
fn capability_paths_readable_but_not_listable() {
    let r = rules(json!({
        "rooms": {".read": true, ".write": true},
        "private": {"$cap": {".read": true, ".write": true}}
    }));
    let anon = Caller::Anonymous;
    let db = Value::Null;
    assert!(r.can_read(&anon, &p("/rooms/x"), &db, NOW));
    assert!(!r.can_read(&anon, &p("/private"), &db, NOW));
    assert!(!r.can_read(&anon, &p("/"), &db, NOW));
    assert!(r.can_read(&anon, &p("/private/abc/offers"), &db, NOW));
    assert!(!set(&r, &anon, &db, "/private", json!(1)));
    assert!(r.can_read(&Caller::Admin, &p("/private"), &db, NOW));
}

#[test]
fn literals_operators_and_precedence() {
    let db = Value::Null;
    let a = Caller::Anonymous;
    for (expr, want) in [
        ("true", true),
        ("false", false),
        ("!false", true),
        ("1 + 2 * 3 == 7", true),
        ("(1 + 2) * 3 == 9", true),
        ("10 - 4 - 3 == 3", true),
        ("7 % 4 === 3", true),
        ("8 / 2 == 4", true),
        ("-3 < -2", true),
        ("2 <= 2 && 3 >= 3 && 4 > 3", true),
        ("'a' + 'b' == \"ab\"", true),
        ("'room' + 1 == 'room1'", true),
        ("'abc' < 'abd'", true),
        ("true || false && false", true),
        ("(true || false) && false", false),
        ("null == null", true),
        ("1 != 2 && 1 !== 2", true),
        ("'x' == 1", false),
        ("1 == 1 ? true : false", true),
        ("false ? true : 1 == 2", false),
        ("'it\\'s'.length == 4", true),
        (
            "'Hello'.toLowerCase() == 'hello' && 'a'.toUpperCase() == 'A'",
            true,
        ),
        (
            "'abcdef'.contains('cd') && 'abc'.beginsWith('ab') && 'abc'.endsWith('bc')",
            true,
        ),
        ("'room-42'.matches(/^room-[0-9]+$/)", true),
        ("'ROOM'.matches(/^room$/i)", true),
        ("'room'.matches(/^x/)", false),
        ("now > 1000", true),
        ("auth == null", true),
    ] {
        assert_eq!(read_rule(expr, &a, &db), want, "{expr}");
    }
}

#[test]
fn errors_make_the_rule_false() {
    let db = json!({"name": "x"});
    let a = Caller::Anonymous;
    for expr in [
        "auth.uid == 'x'",                  // a property of null
        "data.child('missing').val() > 1",  // null compared with a number
        "data.child('name').val() > 1",     // a string compared with a number
        "!data.child('name').val()",        // `!` of a string
        "data.child('name').val() || true", // `||` of a non-boolean
        "data.child('missing').val().length > 0",
        "root.parent().exists()",
        "1",
    ] {
        assert!(!read_rule(expr, &a, &db), "{expr}");
        // The fault makes the whole rule false, even under a `!`.
        assert!(!read_rule(&format!("!({expr})"), &a, &db), "!({expr})");
    }
}

#[test]
fn auth_identity_and_token() {
    let mut token = serde_json::Map::new();
    token.insert("admin".into(), json!(true));
    let id = Caller::User(Identity {
        uid: "alice".into(),
        provider: "anonymous".into(),
        token,
    });
    let db = Value::Null;
    assert!(read_rule(
        "auth.uid == 'alice' && auth.provider == 'anonymous'",
        &id,
        &db
    ));
    assert!(read_rule("auth.token.admin === true", &id, &db));
    assert!(read_rule("auth.token.missing == null", &id, &db));
    assert!(!read_rule("auth == null", &id, &db));
}

#[test]
fn snapshots_over_the_stored_tree() {
    let db = json!({
        "users": {"alice": {"name": "Alice", "age": 30, "ok": true}},
        "names": {"Alice": "alice"}
    });
    let r = rules(json!({
        "users": {"$uid": {
            ".read": "data.child('name').isString() && data.child('age').isNumber() && data.child('ok').isBoolean() && data.hasChildren(['name', 'age']) && data.hasChildren() && data.hasChild('ok') && !data.hasChild('zz')",
            "name": {".read": "root.child('names/' + data.val()).val() === $uid && data.parent().child('age').val() >= 18"}
        }}
    }));
    let a = Caller::Anonymous;
    assert!(r.can_read(&a, &p("/users/alice"), &db, NOW));
    assert!(r.can_read(&a, &p("/users/alice/name"), &db, NOW));
    assert!(!r.can_read(&a, &p("/users/bob"), &db, NOW));
}

#[test]
fn write_cascades_and_cannot_be_revoked_below() {
    let r = rules(json!({
        "rooms": {".write": "auth != null", "$room": {".write": false}},
        "users": {"$uid": {".write": "auth.uid === $uid"}}
    }));
    let db = Value::Null;
    assert!(set(&r, &alice(), &db, "/rooms/r1", json!(1)));
    assert!(!set(&r, &Caller::Anonymous, &db, "/rooms/r1", json!(1)));
    assert!(set(&r, &alice(), &db, "/users/alice/name", json!("A")));
    assert!(!set(&r, &alice(), &db, "/users/bob", json!("A")));
    assert!(!set(&r, &alice(), &db, "/users", json!({"alice": 1})));
    assert!(!set(&r, &alice(), &db, "/other", json!(1)));
}

#[test]
fn write_rules_see_data_and_new_data() {
    // Create-only: a room can be made once, and only by its creator.
    let r = rules(json!({"rooms": {"$room": {
        ".write": "!data.exists() && newData.child('createdBy').val() === auth.uid"
    }}}));
    let db = json!({"rooms": {"old": {"createdBy": "bob"}}});
    assert!(set(
        &r,
        &alice(),
        &db,
        "/rooms/new",
        json!({"createdBy": "alice"})
    ));
    assert!(!set(
        &r,
        &alice(),
        &db,
        "/rooms/new",
        json!({"createdBy": "bob"})
    ));
    assert!(!set(
        &r,
        &alice(),
        &db,
        "/rooms/old",
        json!({"createdBy": "alice"})
    ));
}

#[test]
fn validate_applies_to_every_new_node_and_does_not_cascade() {
    let r = rules(json!({
        ".write": true,
        "rooms": {"$room": {
            ".validate": "newData.hasChildren(['name'])",
            "name": {".validate": "newData.isString() && newData.val().length < 10"},
            "$other": {".validate": false}
        }}
    }));
    let db = json!({"rooms": {"r": {"name": "R"}}});
    let a = Caller::Anonymous;
    assert!(set(&r, &a, &db, "/rooms/x", json!({"name": "ok"})));
    assert!(!set(&r, &a, &db, "/rooms/x", json!({"name": 5})));
    assert!(!set(
        &r,
        &a,
        &db,
        "/rooms/x",
        json!({"name": "far too long a name"})
    ));
    assert!(!set(&r, &a, &db, "/rooms/x", json!({"title": "no name"})));
    assert!(!set(
        &r,
        &a,
        &db,
        "/rooms/x",
        json!({"name": "ok", "extra": 1})
    ));
    // Writing below the room: the room's own .validate is judged on the room as it would be.
    assert!(set(&r, &a, &db, "/rooms/r/name", json!("S")));
    assert!(!set(&r, &a, &db, "/rooms", json!({"x": {"name": 5}})));
    // Deletes are never validated.
    assert!(set(&r, &a, &db, "/rooms/r", Value::Null));
    // A .validate true at a parent does not excuse a child.
    let r =
        rules(json!({".write": true, ".validate": true, "n": {".validate": "newData.isNumber()"}}));
    assert!(!set(&r, &a, &Value::Null, "/", json!({"n": "x"})));
}

#[test]
fn multi_path_update_judged_on_the_combined_result() {
    // A room must always name itself in the index: only an update writing both passes.
    let r = rules(json!({
        "rooms": {"$room": {".write": true, ".validate": "root.child('index').child($room).exists() || newData.parent().parent().child('index/' + $room).exists()"}},
        "index": {"$room": {".write": true}}
    }));
    let db = Value::Null;
    let a = Caller::Anonymous;
    assert!(!r.can_write(&a, &db, &[(p("/rooms/r"), Some(json!(1)))], NOW));
    assert!(r.can_write(
        &a,
        &db,
        &[
            (p("/rooms/r"), Some(json!(1))),
            (p("/index/r"), Some(json!(true)))
        ],
        NOW
    ));
    // One path not allowed denies the whole update.
    assert!(!r.can_write(
        &a,
        &db,
        &[
            (p("/index/r"), Some(json!(true))),
            (p("/elsewhere"), Some(json!(1)))
        ],
        NOW
    ));
}

#[test]
fn index_on_is_required_for_child_queries() {
    let r = rules(
        json!({"people": {".indexOn": ["age", "meta/rank"]}, "rooms": {"$r": {".indexOn": "t"}}}),
    );
    assert!(r.check_index(&p("/people"), &p("age")).is_ok());
    assert!(r.check_index(&p("/people"), &p("meta/rank")).is_ok());
    assert!(r.check_index(&p("/rooms/x"), &p("t")).is_ok());
    assert_eq!(
        r.check_index(&p("/people"), &p("name")).unwrap_err(),
        "Index not defined, add \".indexOn\": \"name\", for path \"/people\", to the rules"
    );
    assert!(Rules::open().check_index(&p("/any"), &p("x")).is_ok());
}

#[test]
fn unsupported_rules_are_refused_naming_the_rule() {
    for (doc, words) in [
        (
            json!({"rules": {".frobnicate": true}}),
            "unknown rule .frobnicate",
        ),
        (json!({"nope": {}}), "must be {"),
        (
            json!({"rules": {"a": {".read": "data.frob()"}}}),
            "/a/.read \"data.frob()\" is not supported: the method .frob()",
        ),
        (
            json!({"rules": {".read": "query.limitToFirst < 10"}}),
            "\"query\" is not supported",
        ),
        (
            json!({"rules": {".read": "newData.exists()"}}),
            "newData is not available",
        ),
        (
            json!({"rules": {"a": {".write": "auth.uid == $uid"}}}),
            "$uid is not a wildcard",
        ),
        (json!({"rules": {".read": "(true"}}), "expected \")\""),
        (json!({"rules": {".read": "true true"}}), "unexpected"),
        (json!({"rules": {".read": "data.val()[0]"}}), "indexing"),
        (
            json!({"rules": {".read": "'a'.matches('a')"}}),
            "regular expression literal",
        ),
        (
            json!({"rules": {".read": "a & b"}}),
            "not part of the rules language",
        ),
        (json!({"rules": {".indexOn": 5}}), ".indexOn must be"),
    ] {
        let err = Rules::parse(&doc).unwrap_err().to_string();
        assert!(err.contains(words), "{doc}: {err}");
    }
}

#[test]
fn the_shipped_rules_file_loads() {
    let text = include_str!("../../../../database.rules.json");
    Rules::parse(&serde_json::from_str(text).unwrap()).unwrap();
}

#[test]
fn a_write_no_data_could_allow_is_known_before_its_data() {
    let shipped: Value =
        serde_json::from_str(include_str!("../../../../database.rules.json")).unwrap();
    let shipped = Rules::parse(&shipped).unwrap();
    let anon = Caller::Anonymous;
    // Every `.write` of the shipped rules starts with `auth != null`.
    for (path, below) in [
        ("/", true),
        ("/rooms/r1", false),
        ("/occupants/r1/bob", true),
    ] {
        assert!(!shipped.may_ever_write(&anon, &p(path), below), "{path}");
    }
    // A signed-in user may, depending on the data: not decided, so not refused early.
    assert!(shipped.may_ever_write(&alice(), &p("/rooms/r1"), false));
    assert!(shipped.may_ever_write(&alice(), &p("/"), true));
    // Where no rule grants anything at all, even a signed-in user is refused early...
    assert!(!shipped.may_ever_write(&alice(), &p("/elsewhere/x"), true));
    // ...and a PUT at the root is granted by no rule on its way (only rules below it grant).
    assert!(!shipped.may_ever_write(&alice(), &p("/"), false));

    // A `$variable` bound by the path decides `$uid === auth.uid`.
    let own =
        rules(json!({"users": {"$uid": {".write": "$uid === auth.uid && newData.exists()"}}}));
    assert!(own.may_ever_write(&alice(), &p("/users/alice"), false));
    assert!(!own.may_ever_write(&alice(), &p("/users/bob"), false));
    assert!(!own.may_ever_write(&alice(), &p("/users/bob/name"), true));
    // Under the wildcard the key is not known yet: a PATCH of /users may be allowed.
    assert!(own.may_ever_write(&alice(), &p("/users"), true));

    // A secret server's default rules refuse everyone but the admin.
    let locked = rules(json!({".read": false, ".write": false}));
    assert!(!locked.may_ever_write(&alice(), &p("/"), true));
    assert!(locked.may_ever_write(&Caller::Admin, &p("/"), true));
    // Data-dependent rules are never refused early, whoever asks.
    let data = rules(json!({".write": "!data.exists()"}));
    assert!(data.may_ever_write(&anon, &p("/a/b"), true));
    // `!=`/`==` between literals and auth fields fold; `||` needs both sides false.
    let either = rules(
        json!({".write": "auth != null && auth.uid == 'alice' || auth != null && data.exists()"}),
    );
    assert!(either.may_ever_write(&alice(), &p("/x"), false));
    assert!(!either.may_ever_write(&anon, &p("/x"), false));
    // A field of a missing `auth` faults on Firebase; here it is only "not known", never
    // a reason to refuse early.
    let fault = rules(json!({".write": "auth.uid == 'alice' || data.exists()"}));
    assert!(fault.may_ever_write(&anon, &p("/x"), false));
}
