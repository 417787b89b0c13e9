//! Signs in anonymously and prints the uid (Huddle's peer id) and how long the ID token lasts.
//!
//! Against Firebase's Auth emulator or a huddle-db (same endpoints):
//!   cargo run -p signal --example signin -- --auth-host 127.0.0.1:9099 --api-key any
//! With a pasted web app config and a saved credential, as the app does:
//!   cargo run -p signal --example signin -- --config firebase-config.js --saved cred.json
//! `FIREBASE_AUTH_EMULATOR_HOST` is honoured as the SDKs honour it.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use signal::auth::{AuthHost, AuthSettings, Credential, FirebaseAuth, FirebaseConfig};

#[derive(Parser)]
struct Args {
    /// The project's web API key (or give --config).
    #[arg(long)]
    api_key: Option<String>,
    /// The web app config as the Firebase console shows it (JavaScript or JSON), in a file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// An emulator or huddle-db: `host:port` or `http(s)://host:port`.
    #[arg(long)]
    auth_host: Option<String>,
    /// Where the credential is kept between runs (read if present, written after sign-in).
    #[arg(long)]
    saved: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    let api_key = match (&args.config, &args.api_key) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
            let config = FirebaseConfig::parse(&text)?;
            println!("database: {}", config.database_url());
            config.api_key
        }
        (None, Some(key)) => key.clone(),
        (None, None) => anyhow::bail!("give --api-key or --config"),
    };
    let saved: Option<Credential> = match &args.saved {
        Some(p) if p.exists() => Some(serde_json::from_str(&std::fs::read_to_string(p)?)?),
        _ => None,
    };
    let mut settings = AuthSettings::new(api_key).with_saved(saved);
    if let Some(h) = &args.auth_host {
        settings = settings.with_host(AuthHost::emulator(h));
    }
    let auth = FirebaseAuth::new(settings)?;
    let uid = auth.sign_in().await?;
    println!("uid: {uid}");
    if let Some(left) = auth.token_expires_in() {
        println!("ID token expires in {} s", left.as_secs());
    }
    println!("{:?}", auth.stats());
    if let (Some(p), Some(c)) = (&args.saved, auth.credential().borrow().clone()) {
        std::fs::write(p, serde_json::to_string(&c)?)?;
        println!("credential saved to {}", p.display());
    }
    Ok(())
}
