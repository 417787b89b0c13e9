//! The table of `tests/rules/cases.json` through targaryen, an independent evaluator of
//! Firebase rules (`tests/rules/check-with-targaryen.js`): huddle-db runs the same table
//! (`shipped_rules.rs`), and the two must agree with it, case by case.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::PathBuf;
use std::process::Command;

#[test]
fn targaryen_judges_every_case_of_the_table_as_it_says() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let targaryen = repo.join("tests/firebase/node_modules/targaryen");
    let node = Command::new("node").arg("--version").output();
    if node.is_err() || !targaryen.join("package.json").exists() {
        // `make test` installs both (`scripts/install-deps.sh test`), so on CI this always runs.
        eprintln!(
            "skipped: needs node and {} (run `scripts/install-deps.sh test`)",
            targaryen.display()
        );
        return;
    }
    let out = Command::new("node")
        .arg(repo.join("tests/rules/check-with-targaryen.js"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "targaryen disagrees:\n{text}");
    assert!(text.contains("agrees with all"), "{text}");
}
