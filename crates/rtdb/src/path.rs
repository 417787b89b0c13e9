//! Database paths and key validation, with Firebase's rules for what a key may contain.

use std::fmt;

use crate::error::DbError;

/// Longest key Firebase accepts, in UTF-8 bytes.
pub const MAX_KEY_BYTES: usize = 768;
/// Deepest location Firebase stores, in keys from the root.
pub const MAX_DEPTH: usize = 32;

/// An absolute, validated location in the tree: `/` is the root, `/rooms/abc` two segments down.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DbPath(Vec<String>);

impl DbPath {
    /// The root location.
    pub fn root() -> Self {
        Self(Vec::new())
    }

    /// Parses a slash-separated path whose segments are already percent-decoded.
    /// Empty segments are skipped, as Firebase does (`/a//b/` is `/a/b`).
    pub fn parse(raw: &str) -> Result<Self, DbError> {
        let mut segments = Vec::new();
        for seg in raw.split('/').filter(|s| !s.is_empty()) {
            validate_key(seg).map_err(|why| DbError::BadPath(format!("Invalid path: {why}")))?;
            segments.push(seg.to_owned());
        }
        if segments.len() > MAX_DEPTH {
            return Err(DbError::BadPath(format!(
                "Invalid path: it is {} levels deep; the limit is {}",
                segments.len(),
                MAX_DEPTH
            )));
        }
        Ok(Self(segments))
    }

    /// Parses the path part of a request URL: percent-decoded, with the `.json` suffix removed.
    pub fn from_url_path(url_path: &str) -> Result<Self, DbError> {
        let stripped = url_path.strip_suffix(".json").ok_or_else(|| {
            DbError::BadPath("Invalid path: REST paths must end in .json".to_owned())
        })?;
        let decoded = percent_encoding::percent_decode_str(stripped)
            .decode_utf8()
            .map_err(|_| DbError::BadPath("Invalid path: not valid UTF-8".to_owned()))?;
        Self::parse(&decoded)
    }

    /// The segments, outermost first.
    pub fn segments(&self) -> &[String] {
        &self.0
    }

    /// Number of segments (0 for the root).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for the root.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// This path with `child` (itself possibly several segments) appended.
    pub fn join(&self, child: &DbPath) -> DbPath {
        let mut segments = self.0.clone();
        segments.extend(child.0.iter().cloned());
        DbPath(segments)
    }

    /// This path with one more segment.
    pub fn child(&self, key: &str) -> DbPath {
        let mut segments = self.0.clone();
        segments.push(key.to_owned());
        DbPath(segments)
    }

    /// The first `n` segments of this path (all of it when it is shorter).
    pub fn prefix(&self, n: usize) -> DbPath {
        DbPath(self.0[..n.min(self.0.len())].to_vec())
    }

    /// True when `self` is `other` or one of its ancestors.
    pub fn contains(&self, other: &DbPath) -> bool {
        other.0.len() >= self.0.len() && other.0[..self.0.len()] == self.0[..]
    }

    /// `other` relative to `self`, when `self` contains it.
    pub fn relative(&self, other: &DbPath) -> Option<DbPath> {
        self.contains(other)
            .then(|| DbPath(other.0[self.0.len()..].to_vec()))
    }
}

impl fmt::Display for DbPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("/");
        }
        for seg in &self.0 {
            write!(f, "/{seg}")?;
        }
        Ok(())
    }
}

/// Checks one key against Firebase's rules; the error says what is wrong in plain words.
pub fn validate_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("keys must not be empty".to_owned());
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(format!(
            "key is {} bytes long; the limit is {MAX_KEY_BYTES}",
            key.len()
        ));
    }
    if let Some(bad) = key
        .chars()
        .find(|c| matches!(c, '.' | '$' | '#' | '[' | ']' | '/') || c.is_ascii_control())
    {
        return Err(format!(
            "key {key:?} contains {bad:?}; keys must not contain '.', '$', '#', '[', ']', '/' or ASCII control characters"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises_slashes() {
        let p = DbPath::parse("/a//b/").unwrap();
        assert_eq!(p.segments(), ["a", "b"]);
        assert_eq!(p.to_string(), "/a/b");
        assert_eq!(DbPath::parse("").unwrap(), DbPath::root());
    }

    #[test]
    fn url_paths_are_decoded_and_need_json_suffix() {
        let p = DbPath::from_url_path("/rooms/caf%C3%A9%20x.json").unwrap();
        assert_eq!(p.segments(), ["rooms", "café x"]);
        assert!(DbPath::from_url_path("/rooms").is_err());
        assert!(DbPath::from_url_path("/.json").unwrap().is_empty());
    }

    #[test]
    fn rejects_forbidden_characters() {
        for bad in ["a.b", "a$", "#", "[x]", "a\u{1}", "\u{7f}"] {
            assert!(validate_key(bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_key("émoji 🎉 ok-_").is_ok());
        assert!(validate_key(&"k".repeat(768)).is_ok());
        assert!(validate_key(&"k".repeat(769)).is_err());
    }

    #[test]
    fn relative_paths() {
        let a = DbPath::parse("/a").unwrap();
        let abc = DbPath::parse("/a/b/c").unwrap();
        assert_eq!(a.relative(&abc).unwrap().to_string(), "/b/c");
        assert!(abc.relative(&a).is_none());
        assert!(DbPath::root().contains(&a));
        assert!(!DbPath::parse("/ab").unwrap().contains(&abc));
    }
}
