//! The `names` table changes of one batch, kept in memory and written at the batch's end, one
//! statement per path: a name created and removed within a batch (a `.tmp` renamed into place, a
//! file written and deleted) costs one statement instead of two, and looking it up costs none.
//!
//! Each path's pending change is the composition of the batch's operations on it, so the row it
//! writes is the one the operations would have left one by one, whatever the row was before.

use rusqlite::{CachedStatement, Transaction, params};

use super::{StoreError, rows::to_sql};
use crate::events::{FileId, WallNanos};

/// What the batch's operations on one path amount to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NameChange {
    /// The path's current name, if any, ended at `at`.
    Removed { at: WallNanos },
    /// The row is gone (the store no longer knows what the path names).
    Deleted,
    /// The path names `file` since `since`, until `removed_at` if that is set. Unless `replaces`
    /// is set, a row that already named `file` (and was current) keeps its earlier `since`.
    Named {
        file: FileId,
        since: WallNanos,
        removed_at: Option<WallNanos>,
        replaces: bool,
    },
}

impl NameChange {
    /// The change followed by naming `file` at `time`; `None` when that changes nothing.
    fn then_named(self, file: FileId, time: WallNanos) -> Option<Self> {
        match self {
            Self::Named {
                file: named,
                removed_at: None,
                ..
            } if named == file => None,
            // Whatever the row was, it is now not a current name of `file`: a fresh one begins.
            _ => Some(Self::Named {
                file,
                since: time,
                removed_at: None,
                replaces: true,
            }),
        }
    }

    /// The change followed by the name's removal at `time`; `None` when that changes nothing.
    fn then_removed(self, time: WallNanos) -> Option<Self> {
        match self {
            Self::Named {
                file,
                since,
                removed_at: None,
                replaces,
            } => Some(Self::Named {
                file,
                since,
                removed_at: Some(time),
                replaces,
            }),
            // Already removed or gone: a second removal changes nothing.
            _ => None,
        }
    }

    /// What the path names after this change, given what its stored row said (`None`: no row;
    /// `Some((file, current))`).
    pub(super) fn applied_to(self, stored: Option<(FileId, bool)>) -> Option<(FileId, bool)> {
        match self {
            Self::Removed { .. } => stored.map(|(file, _)| (file, false)),
            Self::Deleted => None,
            Self::Named {
                file, removed_at, ..
            } => Some((file, removed_at.is_none())),
        }
    }
}

/// The batch's pending name changes, by path.
#[derive(Debug, Default)]
pub(super) struct PendingNames {
    changes: foldhash::HashMap<Vec<u8>, NameChange>,
    /// Every directory above a pending path (`/a` and `/a/b` for `/a/b/c`): a renamed directory
    /// that is not here has no pending names below it, which spares the scan for a renamed file.
    directories: foldhash::HashSet<Vec<u8>>,
}

impl PendingNames {
    /// `path` names `file` from `time` on.
    pub(super) fn set(&mut self, path: &[u8], file: FileId, time: WallNanos) {
        match self.changes.get_mut(path) {
            Some(change) => {
                if let Some(next) = change.then_named(file, time) {
                    *change = next;
                }
            }
            None => self.insert(
                path,
                NameChange::Named {
                    file,
                    since: time,
                    removed_at: None,
                    replaces: false,
                },
            ),
        }
    }

    /// `path`'s current name, if any, ended at `time`.
    pub(super) fn remove(&mut self, path: &[u8], time: WallNanos) {
        match self.changes.get_mut(path) {
            Some(change) => {
                if let Some(next) = change.then_removed(time) {
                    *change = next;
                }
            }
            None => self.insert(path, NameChange::Removed { at: time }),
        }
    }

    /// `path`'s row goes away.
    pub(super) fn delete(&mut self, path: &[u8]) {
        match self.changes.get_mut(path) {
            Some(change) => *change = NameChange::Deleted,
            None => self.insert(path, NameChange::Deleted),
        }
    }

    /// The first change of `path` in this batch; its directories are noted.
    fn insert(&mut self, path: &[u8], change: NameChange) {
        self.changes.insert(path.to_vec(), change);
        let mut directory = path;
        while let Some(slash) = directory.iter().rposition(|byte| *byte == b'/') {
            directory = &directory[..slash];
            // Present: so are the directories above it.
            if directory.is_empty() || !self.directories.insert(directory.to_vec()) {
                break;
            }
        }
    }

    /// What `path` currently names as far as this batch decided it: `None` when the batch did
    /// not touch it (ask the table), `Some(None)` when it names nothing current.
    pub(super) fn current(&self, path: &[u8]) -> Option<Option<FileId>> {
        self.changes.get(path).map(|change| match change {
            NameChange::Named {
                file,
                removed_at: None,
                ..
            } => Some(*file),
            _ => None,
        })
    }

    /// The pending changes of paths below `directory`.
    pub(super) fn below<'a>(
        &'a self,
        directory: &'a [u8],
    ) -> impl Iterator<Item = (&'a [u8], NameChange)> + 'a {
        // Only a directory with pending names below it is worth a scan of the batch's changes.
        let changes = self
            .directories
            .contains(directory)
            .then(|| self.changes.iter());
        changes
            .into_iter()
            .flatten()
            .filter(move |(path, _)| {
                path.len() > directory.len() + 1
                    && path.starts_with(directory)
                    && path[directory.len()] == b'/'
            })
            .map(|(path, change)| (path.as_slice(), *change))
    }

    /// Writes every pending change, one statement per path.
    pub(super) fn write(self, transaction: &Transaction<'_>) -> Result<(), StoreError> {
        if self.changes.is_empty() {
            return Ok(());
        }
        let mut statements = Statements::prepare(transaction)?;
        for (path, change) in &self.changes {
            statements.write(path, *change)?;
        }
        Ok(())
    }
}

/// The statements of [`PendingNames::write`], prepared once per batch.
struct Statements<'t> {
    /// The common case, a name given (or kept) with no removal: the plain upsert.
    name: CachedStatement<'t>,
    /// Any other [`NameChange::Named`].
    name_exactly: CachedStatement<'t>,
    remove: CachedStatement<'t>,
    delete: CachedStatement<'t>,
}

impl<'t> Statements<'t> {
    fn prepare(transaction: &'t Transaction<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            name: transaction.prepare_cached(
                "INSERT INTO names (path, dev, ino, since, removed_at) \
                 VALUES (?1, ?2, ?3, ?4, NULL) \
                 ON CONFLICT(path) DO UPDATE SET dev = excluded.dev, ino = excluded.ino, \
                 since = excluded.since, removed_at = NULL \
                 WHERE names.dev != excluded.dev OR names.ino != excluded.ino \
                 OR names.removed_at IS NOT NULL",
            )?,
            name_exactly: transaction.prepare_cached(
                "INSERT INTO names (path, dev, ino, since, removed_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT(path) DO UPDATE SET \
                 since = CASE WHEN ?6 = 0 AND names.dev = excluded.dev \
                 AND names.ino = excluded.ino AND names.removed_at IS NULL \
                 THEN names.since ELSE excluded.since END, \
                 dev = excluded.dev, ino = excluded.ino, removed_at = excluded.removed_at \
                 WHERE ?6 != 0 OR excluded.removed_at IS NOT NULL \
                 OR names.dev != excluded.dev OR names.ino != excluded.ino \
                 OR names.removed_at IS NOT NULL",
            )?,
            remove: transaction.prepare_cached(
                "UPDATE names SET removed_at = ?2 WHERE path = ?1 AND removed_at IS NULL",
            )?,
            delete: transaction.prepare_cached("DELETE FROM names WHERE path = ?1")?,
        })
    }

    fn write(&mut self, path: &[u8], change: NameChange) -> rusqlite::Result<usize> {
        match change {
            NameChange::Named {
                file,
                since,
                removed_at: None,
                replaces: false,
            } => self.name.execute(params![
                path,
                to_sql(file.dev),
                to_sql(file.ino),
                to_sql(since)
            ]),
            NameChange::Named {
                file,
                since,
                removed_at,
                replaces,
            } => self.name_exactly.execute(params![
                path,
                to_sql(file.dev),
                to_sql(file.ino),
                to_sql(since),
                removed_at.map(to_sql),
                replaces,
            ]),
            NameChange::Removed { at } => self.remove.execute(params![path, to_sql(at)]),
            NameChange::Deleted => self.delete.execute(params![path]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: FileId = FileId { dev: 1, ino: 10 };
    const B: FileId = FileId { dev: 1, ino: 20 };

    fn change_of(pending: &PendingNames, path: &[u8]) -> NameChange {
        pending.changes[path]
    }

    #[test]
    fn a_name_created_and_removed_is_one_change() {
        let mut pending = PendingNames::default();
        pending.set(b"/etc/x.tmp", A, 1);
        pending.set(b"/etc/x.tmp", A, 2);
        pending.remove(b"/etc/x.tmp", 3);
        pending.remove(b"/etc/x.tmp", 4);
        assert_eq!(
            change_of(&pending, b"/etc/x.tmp"),
            NameChange::Named {
                file: A,
                since: 1,
                removed_at: Some(3),
                replaces: false
            }
        );
        assert_eq!(pending.current(b"/etc/x.tmp"), Some(None));
        assert_eq!(pending.current(b"/etc/y"), None);
    }

    #[test]
    fn naming_after_a_removal_or_another_inode_starts_afresh() {
        let mut pending = PendingNames::default();
        pending.remove(b"/etc/x", 1);
        assert_eq!(
            change_of(&pending, b"/etc/x"),
            NameChange::Removed { at: 1 }
        );
        pending.set(b"/etc/x", A, 2);
        pending.set(b"/etc/y", A, 2);
        pending.set(b"/etc/y", B, 3);
        for path in [&b"/etc/x"[..], b"/etc/y"] {
            assert!(matches!(
                change_of(&pending, path),
                NameChange::Named {
                    replaces: true,
                    removed_at: None,
                    ..
                }
            ));
        }
        assert_eq!(pending.current(b"/etc/y"), Some(Some(B)));
    }

    #[test]
    fn a_deleted_row_stays_deleted_until_named_again() {
        let mut pending = PendingNames::default();
        pending.set(b"/etc/x", A, 1);
        pending.delete(b"/etc/x");
        pending.remove(b"/etc/x", 2);
        assert_eq!(change_of(&pending, b"/etc/x"), NameChange::Deleted);
        pending.set(b"/etc/x", B, 3);
        assert_eq!(
            change_of(&pending, b"/etc/x"),
            NameChange::Named {
                file: B,
                since: 3,
                removed_at: None,
                replaces: true
            }
        );
    }

    #[test]
    fn below_finds_the_names_under_a_directory_only() {
        let mut pending = PendingNames::default();
        for path in [&b"/d"[..], b"/d/a", b"/d0", b"/e", b"/f/g"] {
            pending.set(path, A, 1);
        }
        pending.remove(b"/d/b/c", 2);
        let mut below: Vec<&[u8]> = pending.below(b"/d").map(|(p, _)| p).collect();
        below.sort();
        assert_eq!(below, vec![&b"/d/a"[..], b"/d/b/c"]);
        assert_eq!(pending.below(b"/d/b").count(), 1);
        assert_eq!(pending.below(b"/e").count(), 0);
        assert_eq!(pending.below(b"/f").count(), 1);
    }
}
