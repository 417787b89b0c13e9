//! The shipped `database.rules.json`, enforced by huddle-db over real sockets, against the table
//! of cases in `tests/rules/cases.json` (which an independent evaluator, targaryen, also runs):
//! each case starts from the table's seed and must be allowed or refused as the table says.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::path::PathBuf;

use common::Rest;
use serde_json::Value;

const SECRET: &str = "admin-secret";

fn repo_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

/// `"$NOW"` and `"$NOW-<ms>"` strings become the clock in ms (minus ms), as the table says.
fn with_now(value: &Value, now: u64) -> Value {
    match value {
        Value::String(s) if s == "$NOW" => Value::from(now),
        Value::String(s) => match s
            .strip_prefix("$NOW-")
            .and_then(|ms| ms.parse::<u64>().ok())
        {
            Some(ms) => Value::from(now - ms),
            None => value.clone(),
        },
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), with_now(v, now)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| with_now(v, now)).collect()),
        other => other.clone(),
    }
}

fn query_for(auth: &Value) -> String {
    if auth.is_null() {
        return String::new();
    }
    let encoded: String = form_urlencoded::byte_serialize(auth.to_string().as_bytes()).collect();
    format!("?auth={SECRET}&auth_variable_override={encoded}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_of_the_table_is_allowed_or_refused_as_it_says() {
    let cases_file = repo_file("tests/rules/cases.json");
    if !cases_file.exists() {
        // Only before the branch that writes the table is merged; on main it is always there.
        eprintln!("skipped: {} does not exist yet", cases_file.display());
        return;
    }
    let table: Value =
        serde_json::from_str(&std::fs::read_to_string(&cases_file).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.secret = Some(SECRET.into());
    config.rules_file = Some(repo_file("database.rules.json"));
    let server = common::start_in_process(config).await;
    let rest = Rest::new(&server.url());
    let admin = format!("?auth={SECRET}");

    let mut wrong = Vec::new();
    let cases = table["cases"].as_array().unwrap();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let now = rtdb::db::now_ms();
        let seed = with_now(&table["seed"], now).to_string();
        let seeded = rest
            .send("PUT", &format!("/{admin}"), Some(&seed), &[])
            .await;
        assert_eq!(seeded.status, 200, "seeding for {name}: {}", seeded.text);
        let path = case["path"].as_str().unwrap();
        let url = format!("{path}{}", query_for(&case["auth"]));
        let data = with_now(&case["data"], now).to_string();
        let answer = match case["op"].as_str().unwrap() {
            "read" => rest.send("GET", &url, None, &[]).await,
            "set" => rest.send("PUT", &url, Some(&data), &[]).await,
            "update" => rest.send("PATCH", &url, Some(&data), &[]).await,
            other => panic!("case {name}: unknown op {other}"),
        };
        let allow = case["allow"].as_bool().unwrap();
        let status = answer.status.as_u16();
        let as_expected = if allow { status == 200 } else { status == 401 };
        if !as_expected {
            let body: String = answer.text.chars().take(200).collect();
            wrong.push(format!(
                "{name}: expected {}, got {status} {body}",
                if allow { "allowed" } else { "refused" },
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases went the wrong way:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
}
