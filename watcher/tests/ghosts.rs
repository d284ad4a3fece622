//! The ghost entries of issue 10, one named test each: after each sequence, the published events
//! replayed over the start must equal the disk (paths and SHA-256), live and after a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::path::Path;
use std::time::Duration;

use common::replay::{self, Tree};
use common::{dirs, Watcher};

const QUIET: Duration = Duration::from_secs(2);

/// Starts on `setup`'s tree, runs `ops` live, and checks the replay; then restarts and checks
/// that the next run publishes nothing that changes the replay.
fn check(setup: impl Fn(&Path), ops: impl Fn(&Path)) {
    let (_keep, data, state) = dirs();
    setup(&data);
    let mut tree = Tree::new();
    let w = Watcher::start(&data, state.path(), &[]);
    w.wait_ready();
    w.converge(&mut tree, &data, QUIET, || "after the start-up scan".into());
    ops(&data);
    w.converge(&mut tree, &data, QUIET, || "live".into());
    let (status, log) = w.stop();
    assert!(status.success(), "{log}");

    let w = Watcher::start(&data, state.path(), &[]);
    w.wait_ready();
    w.converge(&mut tree, &data, QUIET, || "after a restart".into());
    assert_eq!(tree, replay::disk(&data));
}

fn write(p: &Path, content: &str) {
    fs::write(p, content).unwrap();
}

#[test]
fn a_rename_chain_within_the_settle_delay_leaves_no_ghost() {
    check(
        |d| write(&d.join("a"), "a"),
        |d| {
            fs::rename(d.join("a"), d.join("a2")).unwrap();
            fs::rename(d.join("a2"), d.join("a3")).unwrap();
        },
    );
}

#[test]
fn a_rename_chain_through_an_existing_name_leaves_no_ghost() {
    check(
        |d| {
            write(&d.join("a"), "a");
            write(&d.join("b"), "b");
        },
        |d| {
            fs::rename(d.join("a"), d.join("b")).unwrap();
            fs::rename(d.join("b"), d.join("c")).unwrap();
        },
    );
}

#[test]
fn a_rename_followed_by_rm_leaves_no_ghost() {
    check(
        |d| {
            write(&d.join("a"), "a");
            fs::create_dir(d.join("sub")).unwrap();
        },
        |d| {
            fs::rename(d.join("a"), d.join("b")).unwrap();
            fs::remove_file(d.join("b")).unwrap();
            // And a move into another directory, then rm.
            write(&d.join("c"), "c");
        },
    );
}

#[test]
fn a_move_followed_by_rm_leaves_no_ghost() {
    check(
        |d| {
            write(&d.join("a"), "a");
            fs::create_dir(d.join("sub")).unwrap();
        },
        |d| {
            fs::rename(d.join("a"), d.join("sub/a")).unwrap();
            fs::remove_file(d.join("sub/a")).unwrap();
        },
    );
}

#[test]
fn a_directory_renamed_twice_leaves_no_ghost() {
    check(
        |d| {
            fs::create_dir_all(d.join("d/inner")).unwrap();
            write(&d.join("d/x"), "x");
            write(&d.join("d/inner/y"), "y");
        },
        |d| {
            fs::rename(d.join("d"), d.join("d2")).unwrap();
            fs::rename(d.join("d2"), d.join("d3")).unwrap();
        },
    );
}

#[test]
fn a_file_replaced_by_a_directory_is_reported_deleted() {
    check(
        |d| write(&d.join("g"), "g"),
        |d| {
            fs::remove_file(d.join("g")).unwrap();
            fs::create_dir(d.join("g")).unwrap();
            write(&d.join("g/h"), "h");
        },
    );
}

#[test]
fn a_directory_replaced_by_a_file_is_reported() {
    check(
        |d| {
            fs::create_dir(d.join("g")).unwrap();
            write(&d.join("g/h"), "h");
        },
        |d| {
            fs::remove_dir_all(d.join("g")).unwrap();
            write(&d.join("g"), "now a file");
        },
    );
}

#[test]
fn a_file_replaced_by_a_directory_while_down_is_reported_deleted_at_start() {
    let (_keep, data, state) = dirs();
    write(&data.join("g"), "g");
    let mut tree = Tree::new();
    let w = Watcher::start(&data, state.path(), &[]);
    w.wait_ready();
    w.converge(&mut tree, &data, QUIET, || "first run".into());
    let (status, log) = w.stop();
    assert!(status.success(), "{log}");
    fs::remove_file(data.join("g")).unwrap();
    fs::create_dir(data.join("g")).unwrap();
    write(&data.join("g/h"), "h");
    let w = Watcher::start(&data, state.path(), &[]);
    w.wait_ready();
    w.converge(&mut tree, &data, QUIET, || "after the restart".into());
}
