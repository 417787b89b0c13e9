//! huddle-db inside the test process, with the repository's rules: what the peer tests call a
//! signaling server. In process it needs no binary built beforehand and starts in milliseconds.

use std::path::Path;

use crate::Error;

/// Starts an rtdb server on a free loopback port with `database.rules.json` enforced and
/// [`crate::TEST_SECRET`] as its admin secret (for [`crate::as_test_user`]; everyone else signs
/// in). Keep the folder as long as the server: dropping it removes the data.
pub async fn in_process_db() -> Result<(tempfile::TempDir, rtdb::Server), Error> {
    in_process_db_with(|_| {}).await
}

/// [`in_process_db`] with `tweak` applied to the configuration first (a short token lifetime...).
pub async fn in_process_db_with(
    tweak: impl FnOnce(&mut rtdb::ServerConfig),
) -> Result<(tempfile::TempDir, rtdb::Server), Error> {
    let dir = tempfile::tempdir()?;
    let mut config = rtdb::ServerConfig::new(
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        dir.path().to_owned(),
    );
    config.rules_file =
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../database.rules.json"));
    config.secret = Some(crate::TEST_SECRET.to_owned());
    tweak(&mut config);
    let server = rtdb::Server::start(config).await?;
    Ok((dir, server))
}
