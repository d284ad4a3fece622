//! Known-answer tests, pinned against `sha256sum` and `xxhsum -H2` once and kept as data.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use hasher::{hash_file, BUFFER_SIZE};

struct Case {
    name: &'static str,
    content: fn() -> Vec<u8>,
    sha256: &'static str,
    xxh128: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "empty",
        content: Vec::new,
        sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        xxh128: "99aa06d3014798d86001c324468d497f",
    },
    Case {
        name: "abc",
        content: || b"abc".to_vec(),
        sha256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        xxh128: "06b05ab6733a618578af5f94892f3950",
    },
    Case {
        name: "1 MiB, byte i = i mod 251",
        content: || (0..1usize << 20).map(|i| (i % 251) as u8).collect(),
        sha256: "631b84027d6b9e52b539c4e8373622d23032dfadc64d60af87339c9037e4f769",
        xxh128: "53738d98098cabba6e0d7ac36b8c10ff",
    },
    Case {
        name: "4 buffers + 1 byte, byte i = (7i + 3) mod 256",
        content: || {
            (0..BUFFER_SIZE * 4 + 1)
                .map(|i| ((i * 7 + 3) % 256) as u8)
                .collect()
        },
        sha256: "75059752ce0b546127d584a3992627babb59950933c6d82d10ad46fec48e7c96",
        xxh128: "d3745b4f82b965ddc2b5ee5eaed7f47e",
    },
];

#[test]
fn known_answers() {
    // The last case is pinned for a 256 KiB buffer; if the buffer changes, re-pin it.
    assert_eq!(BUFFER_SIZE, 256 * 1024);
    let dir = tempfile::tempdir().unwrap();
    for case in CASES {
        let path = dir.path().join("case.bin");
        let content = (case.content)();
        std::fs::write(&path, &content).unwrap();
        let hashed = hash_file(&path).unwrap();
        assert_eq!(
            hashed.digest.sha256_hex(),
            case.sha256,
            "sha256 of {}",
            case.name
        );
        assert_eq!(
            hashed.digest.xxh128_hex(),
            case.xxh128,
            "xxh128 of {}",
            case.name
        );
        assert_eq!(
            hashed.stamp.size,
            content.len() as u64,
            "size of {}",
            case.name
        );
    }
}
