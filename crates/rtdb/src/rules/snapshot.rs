//! What `data`, `newData` and `root` look at: the stored tree, or the tree as it would be after a
//! pending write, without copying the tree.
//!
//! A [`View`] is the old root plus the write's sets (`(path, new value)`, `None` deleting). Looking
//! up a location borrows from the old tree or from a set's value; only a location that has sets
//! strictly below it (a parent of a multi-path update's targets, or an ancestor a rule calls
//! `.val()` on) is built, and only that subtree. Locations are lists of borrowed segments (from
//! the request's path, the data's keys, the rules' literals), so walking `root.child(..)` chains
//! allocates little: a rule check sits on the writer's path, under the tree's lock.

use std::borrow::Cow;

use serde_json::Value;

use crate::path::DbPath;
use crate::tree;

/// A location: segments mostly borrowed from the request, the data or the rules.
pub type Loc<'a> = Vec<Cow<'a, str>>;

/// `a` is `b` or one of its ancestors: the rest of `b` below `a`.
fn below<'p, 'q>(a: &'p [String], b: &'q [Cow<'_, str>]) -> Option<&'q [Cow<'q, str>]>
where
    'p: 'q,
{
    (b.len() >= a.len() && a.iter().zip(b).all(|(x, y)| x == y)).then(|| &b[a.len()..])
}

fn get_in<'v>(mut node: &'v Value, segs: &[impl AsRef<str>]) -> Option<&'v Value> {
    for seg in segs {
        node = node.as_object()?.get(seg.as_ref())?;
    }
    (!node.is_null()).then_some(node)
}

/// `a` is a strict descendant-or-self of `b` (the segments, as a path).
fn contains(b: &[Cow<'_, str>], a: &[String]) -> bool {
    a.len() >= b.len() && b.iter().zip(a).all(|(x, y)| x == y)
}

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

    /// The value at `loc`, `None` when there is nothing.
    pub fn get(&self, loc: &[Cow<'_, str>]) -> Option<Cow<'a, Value>> {
        let mut under = Vec::new();
        for (at, value) in self.sets {
            if let Some(rest) = below(at.segments(), loc) {
                // A set at or above `loc` decides it alone: sets are never nested.
                return value
                    .as_ref()
                    .and_then(|v| get_in(v, rest))
                    .map(Cow::Borrowed);
            }
            if contains(loc, at.segments()) {
                under.push((&at.segments()[loc.len()..], value));
            }
        }
        let old = get_in(self.root, loc);
        if under.is_empty() {
            return old.map(Cow::Borrowed);
        }
        let mut built = old.cloned().unwrap_or(Value::Null);
        for (rest, value) in under {
            let rel = rest.iter().fold(DbPath::root(), |p, s| p.child(s));
            tree::set(&mut built, &rel, value.clone());
        }
        (!built.is_null()).then_some(Cow::Owned(built))
    }

    /// Whether anything is at `loc`; builds nothing unless only deletes lie below it.
    pub fn exists(&self, loc: &[Cow<'_, str>]) -> bool {
        let mut only_deletes_below = false;
        for (at, value) in self.sets {
            if let Some(rest) = below(at.segments(), loc) {
                return value.as_ref().is_some_and(|v| get_in(v, rest).is_some());
            }
            if contains(loc, at.segments()) {
                if value.is_some() {
                    return true;
                }
                only_deletes_below = true;
            }
        }
        if only_deletes_below {
            self.get(loc).is_some()
        } else {
            get_in(self.root, loc).is_some()
        }
    }
}

/// A location in a [`View`]: Firebase's `RuleDataSnapshot`.
#[derive(Clone, Debug)]
pub struct Snapshot<'a> {
    pub view: View<'a>,
    pub loc: Loc<'a>,
}

impl<'a> Snapshot<'a> {
    pub fn new(view: View<'a>, loc: Loc<'a>) -> Self {
        Snapshot { view, loc }
    }

    pub fn value(&self) -> Option<Cow<'a, Value>> {
        self.view.get(&self.loc)
    }

    pub fn exists(&self) -> bool {
        self.view.exists(&self.loc)
    }

    /// `child('a/b')`: an empty or slash-only path stays here, as Firebase's does.
    pub fn child(&self, rel: Cow<'a, str>) -> Snapshot<'a> {
        let mut loc = self.loc.clone();
        if rel.contains('/') {
            for seg in rel.split('/').filter(|s| !s.is_empty()) {
                loc.push(Cow::Owned(seg.to_owned()));
            }
        } else if !rel.is_empty() {
            loc.push(rel);
        }
        Snapshot::new(self.view, loc)
    }

    /// `parent()`; `None` at the root, where Firebase's is null too.
    pub fn parent(&self) -> Option<Snapshot<'a>> {
        let (_, up) = self.loc.split_last()?;
        Some(Snapshot::new(self.view, up.to_vec()))
    }
}
