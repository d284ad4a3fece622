//! What to do about a path, decided from what was observed: a pure function of the disk's
//! answer (`lstat`), the store's entry and the pending change, with no I/O of its own.
//!
//! The engine gathers the facts and carries the decision out; keeping the decision apart is what
//! lets every case (a rename chain, a file replaced by a directory, a touch) be pinned by a table
//! of facts and outcomes instead of by timing-dependent runs of the whole service.

use hasher::{Digest, Stamp};

use crate::settle::Observed;
use crate::store::Entry;

/// The source of a rename that brought a file to the settled path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    /// The store's entry for the source path.
    pub entry: Option<Entry>,
    /// A regular file is at the source path now (it came back, or never left).
    pub present: bool,
    /// Work on the source path is under way elsewhere in the pipeline.
    pub busy: bool,
}

/// Everything the decision for one settled path depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    /// What `lstat` showed.
    pub seen: Observed,
    /// The full stamp, for a regular file.
    pub stamp: Option<Stamp>,
    /// The filter reports this path.
    pub reported: bool,
    /// The store's entry for this path (accepted changes included).
    pub prior: Option<Entry>,
    /// The rename that brought it here, if a rename event named one.
    pub source: Option<Source>,
    /// The last hint for this path was an unlink: if nothing is there, it was deleted, not
    /// moved.
    pub unlinked: bool,
}

/// What the engine does about a settled path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to publish and nothing to record.
    Nothing,
    /// Nothing is there: a file we reported is deleted (after a short hold, in case a move
    /// claims it), a directory takes its files with it.
    Vanished,
    /// Publish the deletion of the store's entry now: the file was unlinked, or the path now
    /// holds something we do not report (a FIFO, a symlink, a name the filter excludes).
    Delete,
    /// A directory appeared. `replaced_file`: the store knew a file at this path, which is gone.
    /// With a rename source, its entries move below the new name.
    Directory {
        /// The store knew a file here.
        replaced_file: bool,
    },
    /// Renamed here, then unlinked: the file is gone under both names. Publish the deletion of
    /// the rename source's entry now, and of the entry here if `replaced_file` (the rename
    /// replaced a file we reported). An unlinked file cannot turn up under another name, so
    /// neither waits in the limbo.
    SourceUnlinked {
        /// The store knew a file here, which the rename replaced.
        replaced_file: bool,
    },
    /// A rename of the same file (inode and content): publish the move with the stored digests.
    Move,
    /// A rename whose content may have changed on the way: hash, then publish the move.
    HashMove,
    /// A file the store does not know: a move the watcher could not pair, or new (hash it).
    New,
    /// A known file whose stamp changed: hash it; only a new digest is a modification.
    Changed,
}

/// A decision, and whether the rename source must be looked at on its own afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// What to do about the path.
    pub decision: Decision,
    /// The rename source was not accounted for by a move: it may still be in the store
    /// (renamed and then removed, renamed to an excluded name), so it settles on its own.
    pub recheck_source: bool,
}

/// Decides what a settled path means.
pub fn decide(f: &Facts) -> Verdict {
    let unclaimed = |decision| Verdict {
        decision,
        recheck_source: f.source.is_some(),
    };
    let claimed = |decision| Verdict {
        decision,
        recheck_source: false,
    };
    let source_gone = matches!(
        f.source,
        Some(Source {
            entry: Some(_),
            present: false,
            busy: false,
        })
    );
    match f.seen {
        Observed::Missing if f.unlinked && source_gone => claimed(Decision::SourceUnlinked {
            replaced_file: f.prior.is_some(),
        }),
        // An unlinked file cannot turn up under another name (a hard link elsewhere is a file
        // of its own), so its deletion skips the hold that waits for a move to claim it.
        Observed::Missing if f.unlinked && f.prior.is_some() => unclaimed(Decision::Delete),
        Observed::Missing => unclaimed(Decision::Vanished),
        Observed::Dir => claimed(Decision::Directory {
            replaced_file: f.prior.is_some(),
        }),
        Observed::Other => unclaimed(if f.prior.is_some() {
            Decision::Delete
        } else {
            Decision::Nothing
        }),
        Observed::File { .. } => {
            let Some(stamp) = f.stamp.filter(|_| f.reported) else {
                return unclaimed(if f.prior.is_some() {
                    Decision::Delete
                } else {
                    Decision::Nothing
                });
            };
            if let Some(Source {
                entry: Some(old),
                present: false,
                busy: false,
            }) = f.source
            {
                return claimed(
                    if old.stamp.inode == stamp.inode
                        && old.stamp.dev == stamp.dev
                        && old.stamp.same_content_as(&stamp)
                    {
                        Decision::Move
                    } else {
                        Decision::HashMove
                    },
                );
            }
            unclaimed(match f.prior {
                Some(e) if stamp.unchanged_from(&e.stamp) => Decision::Nothing,
                Some(_) => Decision::Changed,
                None => Decision::New,
            })
        }
    }
}

/// What a finished hash means, against the store as it is when the hash comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hashed {
    /// The end of a rename whose content was read again: publish the move.
    Move,
    /// Same digest as the store (a `touch`, a `chmod`, a rewrite of the same bytes): record the
    /// new stamp, publish nothing.
    Touched,
    /// A new digest for a known path.
    Modified,
    /// A path the store does not know: a move found by pairing, or new.
    New,
}

/// Decides what a hash result means.
pub fn after_hash(prior: Option<&Entry>, digest: &Digest, renamed: bool) -> Hashed {
    match prior {
        _ if renamed => Hashed::Move,
        Some(e) if e.digest == *digest => Hashed::Touched,
        Some(_) => Hashed::Modified,
        None => Hashed::New,
    }
}

/// What to do with a file a full scan found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scanned {
    /// The stamp is the recorded one: nothing to do.
    Unchanged,
    /// Settled long ago and nothing else works on it: decide now, on the scan's own stat,
    /// without a second `lstat` and store lookup.
    Decide(Stamp),
    /// New to the store and not yet stat'ed, and nothing else works on it: hash it; the hash's
    /// stamp then says whether it had settled.
    HashUnseen,
    /// Anything else (written a moment ago, busy, pending, or the pipeline is backlogged):
    /// through the settle set, like a live change.
    Settle,
}

/// Decides what a scan's find needs. `stamp` is the scan's stat, or a fresh one when the walk
/// did not stat a path the store knows; `recorded` is the store's entry with accepted changes;
/// `free` says that nothing works on the path and the backlog has room; `settled_long_ago`
/// judges an mtime against the settle delay.
pub fn scanned(
    stamp: Option<Stamp>,
    recorded: Option<&Entry>,
    free: bool,
    settled_long_ago: impl Fn(i64) -> bool,
) -> Scanned {
    match (stamp, recorded) {
        (Some(s), Some(e)) if s.unchanged_from(&e.stamp) => Scanned::Unchanged,
        (Some(s), _) if free && settled_long_ago(s.mtime_ns) => Scanned::Decide(s),
        (None, None) if free => Scanned::HashUnseen,
        _ => Scanned::Settle,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scans_find_is_skipped_decided_hashed_or_settled() {
        let known = entry(stamp(10, 100, 1_000, 1_000), 1);
        let same = stamp(10, 100, 1_000, 1_000);
        let changed = stamp(10, 200, 2_000, 2_000);
        let fresh = stamp(10, 200, 9_000, 9_000);
        let old = |mtime_ns: i64| mtime_ns < 5_000;
        // (case, stamp, recorded, free, outcome)
        let cases = [
            (
                "unchanged",
                Some(same),
                Some(known),
                true,
                Scanned::Unchanged,
            ),
            (
                "unchanged, even while busy",
                Some(same),
                Some(known),
                false,
                Scanned::Unchanged,
            ),
            (
                "changed long ago",
                Some(changed),
                Some(known),
                true,
                Scanned::Decide(changed),
            ),
            (
                "new, stat'ed, long ago",
                Some(changed),
                None,
                true,
                Scanned::Decide(changed),
            ),
            (
                "changed a moment ago",
                Some(fresh),
                Some(known),
                true,
                Scanned::Settle,
            ),
            (
                "changed, but busy or backlogged",
                Some(changed),
                Some(known),
                false,
                Scanned::Settle,
            ),
            ("new and not stat'ed", None, None, true, Scanned::HashUnseen),
            (
                "new and not stat'ed, but busy",
                None,
                None,
                false,
                Scanned::Settle,
            ),
            (
                "known, and gone since the walk",
                None,
                Some(known),
                true,
                Scanned::Settle,
            ),
        ];
        for (case, stamp, recorded, free, want) in cases {
            assert_eq!(scanned(stamp, recorded.as_ref(), free, old), want, "{case}");
        }
    }

    fn stamp(inode: u64, size: u64, mtime_ns: i64, ctime_ns: i64) -> Stamp {
        Stamp {
            dev: 1,
            inode,
            size,
            mtime_ns,
            ctime_ns,
        }
    }

    fn entry(s: Stamp, d: u8) -> Entry {
        Entry {
            stamp: s,
            digest: Digest::from_parts([d; 32], u128::from(d)),
        }
    }

    fn file(s: Stamp) -> Observed {
        Observed::File {
            size: s.size,
            mtime_ns: s.mtime_ns,
        }
    }

    #[test]
    fn every_case_has_its_decision() {
        use Decision::*;
        let a = stamp(10, 100, 1_000, 1_000);
        let touched = stamp(10, 100, 2_000, 2_000);
        let ctime_only = stamp(10, 100, 1_000, 5_000);
        let other_inode = stamp(11, 100, 1_000, 1_000);
        let known = Some(entry(a, 1));
        let gone = |entry| {
            Some(Source {
                entry,
                present: false,
                busy: false,
            })
        };
        let f = |seen, stamp, reported, prior, source| Facts {
            seen,
            stamp,
            reported,
            prior,
            source,
            unlinked: false,
        };
        let unlinked = |facts: Facts| Facts {
            unlinked: true,
            ..facts
        };
        #[rustfmt::skip]
        let cases: &[(&str, Facts, Decision, bool)] = &[
            ("nothing there, nothing known", f(Observed::Missing, None, true, None, None), Vanished, false),
            ("a reported file is gone", f(Observed::Missing, None, true, known, None), Vanished, false),
            ("renamed, then removed: the source is looked at", f(Observed::Missing, None, true, None, gone(known)), Vanished, true),
            ("a reported file unlinked: deleted now", unlinked(f(Observed::Missing, None, true, known, None)), Delete, false),
            ("unlinked, never reported (a symlink, a new name)", unlinked(f(Observed::Missing, None, true, None, None)), Vanished, false),
            ("renamed, then unlinked: both names are deleted now", unlinked(f(Observed::Missing, None, true, None, gone(known))), SourceUnlinked { replaced_file: false }, false),
            ("renamed over a reported file, then unlinked", unlinked(f(Observed::Missing, None, true, known, gone(known))), SourceUnlinked { replaced_file: true }, false),
            ("renamed, then unlinked, the source back", unlinked(f(Observed::Missing, None, true, None, Some(Source { entry: known, present: true, busy: false }))), Vanished, true),
            ("renamed, then unlinked, the source busy", unlinked(f(Observed::Missing, None, true, None, Some(Source { entry: known, present: false, busy: true }))), Vanished, true),
            ("renamed from a name never reported, then unlinked", unlinked(f(Observed::Missing, None, true, None, gone(None))), Vanished, true),
            ("unlinked, then a file again", unlinked(f(file(a), Some(a), true, known, None)), Nothing, false),
            ("a new directory", f(Observed::Dir, None, true, None, None), Directory { replaced_file: false }, false),
            ("a file replaced by a directory", f(Observed::Dir, None, true, known, None), Directory { replaced_file: true }, false),
            ("a directory renamed: its entries follow", f(Observed::Dir, None, true, None, gone(known)), Directory { replaced_file: false }, false),
            ("a FIFO where a file was", f(Observed::Other, None, true, known, None), Delete, false),
            ("a FIFO, never reported", f(Observed::Other, None, true, None, None), Nothing, false),
            ("renamed to an excluded name", f(file(a), Some(a), false, None, gone(known)), Nothing, true),
            ("a reported file now excluded", f(file(a), Some(a), false, known, None), Delete, false),
            ("a plain rename reuses the digests", f(file(a), Some(a), true, None, gone(known)), Move, false),
            ("a rename over a known file", f(file(a), Some(a), true, Some(entry(other_inode, 2)), gone(known)), Move, false),
            ("renamed and rewritten", f(file(touched), Some(touched), true, None, gone(known)), HashMove, false),
            ("renamed, same size and mtime, other inode", f(file(other_inode), Some(other_inode), true, None, gone(known)), HashMove, false),
            ("the source is back: not a move", f(file(a), Some(a), true, None, Some(Source { entry: known, present: true, busy: false })), New, true),
            ("the source is busy: not a move yet", f(file(a), Some(a), true, None, Some(Source { entry: known, present: false, busy: true })), New, true),
            ("the source was never reported", f(file(a), Some(a), true, None, gone(None)), New, true),
            ("unchanged", f(file(a), Some(a), true, known, None), Nothing, false),
            ("touched: mtime moved", f(file(touched), Some(touched), true, known, None), Changed, false),
            ("rewritten with the mtime put back: the ctime tells", f(file(ctime_only), Some(ctime_only), true, known, None), Changed, false),
            ("replaced by another inode", f(file(other_inode), Some(other_inode), true, known, None), Changed, false),
            ("new", f(file(a), Some(a), true, None, None), New, false),
        ];
        for (name, facts, decision, recheck) in cases {
            assert_eq!(
                decide(facts),
                Verdict {
                    decision: *decision,
                    recheck_source: *recheck
                },
                "{name}"
            );
        }
    }

    #[test]
    fn a_hash_result_is_judged_against_the_store() {
        let s = stamp(1, 1, 1, 1);
        let same = entry(s, 1);
        let other = entry(s, 2);
        #[rustfmt::skip]
        let cases: &[(&str, Option<&Entry>, bool, Hashed)] = &[
            ("the end of a rename", None, true, Hashed::Move),
            ("a rename over a known path", Some(&other), true, Hashed::Move),
            ("same digest: a touch", Some(&same), false, Hashed::Touched),
            ("new digest", Some(&other), false, Hashed::Modified),
            ("unknown path", None, false, Hashed::New),
        ];
        for (name, prior, renamed, want) in cases {
            assert_eq!(after_hash(*prior, &same.digest, *renamed), *want, "{name}");
        }
    }
}
