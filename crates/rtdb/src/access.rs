//! Access control as the server applies it: who the caller is ([`Auth`]) and what the rules let
//! them do ([`Rules`]), with the rules kept in the data folder so they survive a restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use axum::http::HeaderMap;
use serde_json::{json, Value};

use crate::auth::Auth;
use crate::db::{now_ms, Db, WriteGuard};
use crate::error::DbError;
use crate::path::DbPath;
use crate::query::{Filter, OrderBy};
use crate::rules::{Caller, Rules, RulesError};

const RULES_FILE: &str = "rules.json";

/// Credentials plus rules.
pub struct Access {
    auth: Auth,
    /// Shared so a check can hold the rules it started with while they are being replaced.
    rules: RwLock<Arc<Rules>>,
    file: PathBuf,
}

/// Errors loading rules at start-up.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The rules file could not be read or written.
    #[error("rules file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The rules file is not JSON.
    #[error("rules file {0} is not valid JSON")]
    Json(PathBuf),
    /// The rules are not ones this server can enforce.
    #[error(transparent)]
    Rules(#[from] RulesError),
}

impl Access {
    /// Rules from `rules_file` if given (and then kept in the data folder), else the ones kept in
    /// the data folder, else the default: everything open, or, with a secret, nothing for
    /// anyone but the admin.
    pub fn load(
        auth: Auth,
        data_dir: &Path,
        rules_file: Option<&Path>,
    ) -> Result<Self, AccessError> {
        let file = data_dir.join(RULES_FILE);
        let read = |path: &Path| -> Result<Value, AccessError> {
            let text = std::fs::read_to_string(path).map_err(|source| AccessError::Io {
                path: path.to_owned(),
                source,
            })?;
            serde_json::from_str(&text).map_err(|_| AccessError::Json(path.to_owned()))
        };
        if rules_file.is_some() || file.exists() {
            auth.retire_owner();
        }
        let rules = if let Some(given) = rules_file {
            let rules = Rules::parse(&read(given)?)?;
            persist(&file, rules.source()).map_err(|source| AccessError::Io {
                path: file.clone(),
                source,
            })?;
            rules
        } else if file.exists() {
            Rules::parse(&read(&file)?)?
        } else if auth.is_secured() {
            Rules::parse(&json!({"rules": {".read": false, ".write": false}}))?
        } else {
            Rules::open()
        };
        Ok(Access {
            auth,
            rules: RwLock::new(Arc::new(rules)),
            file,
        })
    }

    /// Who is asking (see [`Auth::identify`]).
    pub fn identify(
        &self,
        token: Option<&str>,
        over: Option<&str>,
        headers: &HeaderMap,
    ) -> Result<Caller, DbError> {
        self.auth.identify(token, over, headers)
    }

    fn rules(&self) -> Arc<Rules> {
        self.rules.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Permission denied unless the caller may read `path` of the tree `root`.
    pub fn check_read(&self, caller: &Caller, path: &DbPath, root: &Value) -> Result<(), DbError> {
        self.rules()
            .can_read(caller, path, root, now_ms())
            .then_some(())
            .ok_or(DbError::PermissionDenied)
    }

    /// The check the writer runs on `caller`'s write, with the rules in force when it runs.
    pub fn write_guard(self: &Arc<Self>, caller: &Caller) -> Option<WriteGuard> {
        if *caller == Caller::Admin {
            return None;
        }
        let access = self.clone();
        let caller = caller.clone();
        Some(Box::new(move |old, sets, now| {
            access
                .rules()
                .can_write(&caller, old, sets, now)
                .then_some(())
                .ok_or(DbError::PermissionDenied)
        }))
    }

    /// Permission denied, before the body is read, when no data could let `caller` write at
    /// `path` (or under it, with `below`): see [`Rules::may_ever_write`].
    pub fn precheck_write(
        &self,
        caller: &Caller,
        path: &DbPath,
        below: bool,
    ) -> Result<(), DbError> {
        self.rules()
            .may_ever_write(caller, path, below)
            .then_some(())
            .ok_or(DbError::PermissionDenied)
    }

    /// Refuses a query ordered by a child the rules do not index at `path`, as Firebase does.
    pub fn check_query(&self, path: &DbPath, filter: Option<&Filter>) -> Result<(), DbError> {
        match filter.map(|f| &f.order_by) {
            Some(OrderBy::Child(field)) => self
                .rules()
                .check_index(path, field)
                .map_err(DbError::BadData),
            _ => Ok(()),
        }
    }

    /// The current rules document.
    pub fn rules_document(&self) -> Value {
        self.rules().source().clone()
    }

    /// Replaces the rules (admin only), keeps them on disk, and cancels the streams they no
    /// longer allow.
    pub fn set_rules(&self, doc: Value, db: &Db) -> Result<(), DbError> {
        let rules = Rules::parse(&doc).map_err(|e| DbError::BadData(e.to_string()))?;
        persist(&self.file, rules.source())?;
        let rules = Arc::new(rules);
        self.auth.retire_owner();
        *self.rules.write().unwrap_or_else(|e| e.into_inner()) = rules.clone();
        let now = now_ms();
        let cancelled =
            db.cancel_streams_where(|caller, path, root| !rules.can_read(caller, path, root, now));
        if cancelled > 0 {
            tracing::info!(
                cancelled,
                "new rules cancelled streams that may no longer read"
            );
        }
        Ok(())
    }
}

fn persist(file: &Path, doc: &Value) -> std::io::Result<()> {
    let tmp = file.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(doc).unwrap_or_default())?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, file)?;
    if let Some(dir) = file.parent() {
        crate::store::snapshot::sync_dir(dir)?;
    }
    Ok(())
}
