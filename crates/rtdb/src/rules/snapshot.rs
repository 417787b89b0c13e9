//! What `data`, `newData` and `root` look at: the stored tree, or the tree as it would be after a
//! pending write, without copying the tree.
//!
//! A [`View`] is the old root plus the write's sets (`(path, new value)`, `None` deleting). Looking
//! up a location borrows from the old tree or from a set's value; only a location that has sets
//! strictly below it (a parent of a multi-path update's targets, or an ancestor a rule calls
//! `.val()` on) is built, and only that subtree.

use std::borrow::Cow;

use serde_json::Value;

use crate::path::DbPath;
use crate::tree;

/// A database as the rules see it: `root` with `sets` applied on top.
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    root: &'a Value,
    sets: &'a [(DbPath, Option<Value>)],
}

impl<'a> View<'a> {
    /// The stored tree as it is.
    pub fn current(root: &'a Value) -> Self {
        View { root, sets: &[] }
    }

    /// The tree after `sets` (stored form, no two of them nested) were applied to `root`.
    pub fn after(root: &'a Value, sets: &'a [(DbPath, Option<Value>)]) -> Self {
        View { root, sets }
    }

    /// The value at `path`, `None` when there is nothing.
    pub fn get(&self, path: &DbPath) -> Option<Cow<'a, Value>> {
        let mut below = Vec::new();
        for (at, value) in self.sets {
            if let Some(rest) = at.relative(path) {
                // A set at or above `path` decides it alone: sets are never nested.
                return value
                    .as_ref()
                    .and_then(|v| tree::get(v, &rest))
                    .map(Cow::Borrowed);
            }
            if let Some(rest) = path.relative(at) {
                below.push((rest, value));
            }
        }
        let old = tree::get(self.root, path);
        if below.is_empty() {
            return old.map(Cow::Borrowed);
        }
        let mut built = old.cloned().unwrap_or(Value::Null);
        for (rest, value) in below {
            tree::set(&mut built, &rest, value.clone());
        }
        (!built.is_null()).then_some(Cow::Owned(built))
    }

    /// Whether anything is at `path`; builds nothing unless only deletes lie below it.
    pub fn exists(&self, path: &DbPath) -> bool {
        let mut only_deletes_below = false;
        for (at, value) in self.sets {
            if let Some(rest) = at.relative(path) {
                return value
                    .as_ref()
                    .is_some_and(|v| tree::get(v, &rest).is_some());
            }
            if path.contains(at) {
                if value.is_some() {
                    return true;
                }
                only_deletes_below = true;
            }
        }
        if only_deletes_below {
            self.get(path).is_some()
        } else {
            tree::get(self.root, path).is_some()
        }
    }
}

/// A location in a [`View`]: Firebase's `RuleDataSnapshot`.
#[derive(Clone, Debug)]
pub struct Snapshot<'a> {
    pub view: View<'a>,
    pub path: DbPath,
}

impl<'a> Snapshot<'a> {
    pub fn new(view: View<'a>, path: DbPath) -> Self {
        Snapshot { view, path }
    }

    pub fn value(&self) -> Option<Cow<'a, Value>> {
        self.view.get(&self.path)
    }

    pub fn exists(&self) -> bool {
        self.view.exists(&self.path)
    }

    /// `child('a/b')`: an empty or slash-only path stays here, as Firebase's does.
    pub fn child(&self, rel: &str) -> Snapshot<'a> {
        let mut path = self.path.clone();
        for seg in rel.split('/').filter(|s| !s.is_empty()) {
            path = path.child(seg);
        }
        Snapshot::new(self.view, path)
    }

    /// `parent()`; `None` at the root, where Firebase's is null too.
    pub fn parent(&self) -> Option<Snapshot<'a>> {
        self.path.parent().map(|p| Snapshot::new(self.view, p))
    }
}
