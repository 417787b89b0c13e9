//! Snapshots: the whole tree in one checksummed file, replaced atomically (write, fsync, rename,
//! fsync the folder), so a crash leaves either the old snapshot or the new one, never half of one.
//!
//! Layout: magic `HDBSNAP1`, `next_log: u64 LE`, `crc32: u32 LE`, then the tree as JSON.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;

use serde_json::Value;

const MAGIC: &[u8; 8] = b"HDBSNAP1";

/// A loaded snapshot: the tree and the first log generation written after it.
pub struct Snapshot {
    /// The tree at the time of the snapshot.
    pub tree: Value,
    /// Logs with this generation or later hold writes made after the snapshot.
    pub next_log: u64,
}

/// Loads `path`, or `None` when there is no snapshot yet.
pub fn load(path: &Path) -> io::Result<Option<Snapshot>> {
    let data = match fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let bad = |why: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} is damaged: {why}; refusing to start rather than lose data",
                path.display()
            ),
        )
    };
    if data.len() < 20 || &data[..8] != MAGIC {
        return Err(bad("it is not a huddle-db snapshot"));
    }
    let mut next = [0u8; 8];
    next.copy_from_slice(&data[8..16]);
    let crc = u32::from_le_bytes([data[16], data[17], data[18], data[19]]);
    let body = &data[20..];
    if crc32fast::hash(body) != crc {
        return Err(bad("its checksum does not match"));
    }
    let tree = serde_json::from_slice(body).map_err(|e| bad(&format!("invalid JSON: {e}")))?;
    Ok(Some(Snapshot {
        tree,
        next_log: u64::from_le_bytes(next),
    }))
}

/// Writes a snapshot atomically.
pub fn write(dir: &Path, name: &str, tree: &Value, next_log: u64) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    write_tmp(&tmp, tree, next_log)?;
    fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

/// Writes and fsyncs a snapshot at `tmp`, to be renamed into place by the caller.
pub fn write_tmp(tmp: &Path, tree: &Value, next_log: u64) -> io::Result<()> {
    let body = serde_json::to_vec(tree).map_err(io::Error::other)?;
    let mut f = File::create(tmp)?;
    f.write_all(MAGIC)?;
    f.write_all(&next_log.to_le_bytes())?;
    f.write_all(&crc32fast::hash(&body).to_le_bytes())?;
    f.write_all(&body)?;
    f.sync_all()
}

/// The `next_log` a snapshot's header names, without reading the tree.
pub fn next_log(path: &Path) -> io::Result<u64> {
    let mut head = [0u8; 16];
    File::open(path)?.read_exact(&mut head)?;
    if &head[..8] != MAGIC {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a huddle-db snapshot",
        ));
    }
    let mut next = [0u8; 8];
    next.copy_from_slice(&head[8..]);
    Ok(u64::from_le_bytes(next))
}

/// Makes renames and file creations in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip_and_checksum() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(&dir.path().join("snap")).unwrap().is_none());
        write(dir.path(), "snap", &json!({"a": [1, 2]}), 7).unwrap();
        let s = load(&dir.path().join("snap")).unwrap().unwrap();
        assert_eq!((s.tree, s.next_log), (json!({"a": [1, 2]}), 7));
        let mut data = fs::read(dir.path().join("snap")).unwrap();
        let last = data.len() - 2;
        data[last] ^= 1;
        fs::write(dir.path().join("snap"), data).unwrap();
        assert!(load(&dir.path().join("snap")).is_err());
    }
}
