//! The wire envelope: the JSON every consumer parses. Field names and shapes are the contract in
//! DESIGN.md and are pinned by a golden-file test; change them only with a new contract.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::OnceLock;

use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// What happened to a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventType {
    /// Found by a scan: at start-up, after a rescan, or during reconciliation.
    FileDiscovered,
    /// A new file appeared while the instance was watching.
    FileCreated,
    /// The content of a known file changed (a new digest).
    FileModified,
    /// A known file is gone; the envelope carries its last known size and digests.
    FileDeleted,
    /// A known file moved to another directory.
    FileMoved,
    /// A known file got a new name in the same directory.
    FileRenamed,
}

impl EventType {
    /// All event types, for metrics and tests.
    pub const ALL: [EventType; 6] = [
        Self::FileDiscovered,
        Self::FileCreated,
        Self::FileModified,
        Self::FileDeleted,
        Self::FileMoved,
        Self::FileRenamed,
    ];

    /// The `event_type` string on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FileDiscovered => "file_discovered",
            Self::FileCreated => "file_created",
            Self::FileModified => "file_modified",
            Self::FileDeleted => "file_deleted",
            Self::FileMoved => "file_moved",
            Self::FileRenamed => "file_renamed",
        }
    }

    /// The AMQP routing key, `file.<kind>`.
    pub fn routing_key(self) -> &'static str {
        match self {
            Self::FileDiscovered => "file.discovered",
            Self::FileCreated => "file.created",
            Self::FileModified => "file.modified",
            Self::FileDeleted => "file.deleted",
            Self::FileMoved => "file.moved",
            Self::FileRenamed => "file.renamed",
        }
    }

    /// The event of a file that went from `from` to `to`: `file_moved` when the parent
    /// directory changed, `file_renamed` when only the name did.
    pub fn of_move(from: &Path, to: &Path) -> Self {
        if from.parent() == to.parent() {
            Self::FileRenamed
        } else {
            Self::FileMoved
        }
    }

    /// The message of the INFO line that reports the event ("File discovered", as the
    /// deployment guide's example log line has it).
    pub fn log_message(self) -> &'static str {
        match self {
            Self::FileDiscovered => "File discovered",
            Self::FileCreated => "File created",
            Self::FileModified => "File modified",
            Self::FileDeleted => "File deleted",
            Self::FileMoved => "File moved",
            Self::FileRenamed => "File renamed",
        }
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The file part of an envelope. Sizes and digests are strings on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    /// Absolute path. Lossy UTF-8 when the real name is not UTF-8 (see `path_base64`).
    pub path: String,
    /// The exact path bytes, base64, present only when the path is not valid UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_base64: Option<String>,
    /// The previous path, on `file_moved` and `file_renamed` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_path: Option<String>,
    /// The exact previous path bytes, base64, when `old_path` is not valid UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_path_base64: Option<String>,
    /// Final path component.
    pub name: String,
    /// Extension with its dot (`.mp3`), or empty.
    pub extension: String,
    /// Size in bytes, as a decimal string.
    pub size_bytes: String,
    /// SHA-256, 64 lowercase hex digits.
    pub sha256_hash: String,
    /// XXH3-128, 32 lowercase hex digits, as `xxhsum -H2` prints it.
    pub xxh128_hash: String,
}

/// One event, as published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// A fresh UUID v4 per envelope.
    pub correlation_id: String,
    /// RFC 3339, UTC, microseconds, ending in `Z`.
    pub timestamp: String,
    /// What happened.
    pub event_type: EventType,
    /// The instance that saw it.
    pub instance_id: String,
    /// The instance's `DATA_DIR`.
    pub watched_directory: String,
    /// The file.
    pub file_info: FileInfo,
}

/// Size and digests of the file version an event is about, as plain strings: the envelope does
/// not depend on the hasher's types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFacts {
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 hex.
    pub sha256_hex: String,
    /// XXH3-128 hex.
    pub xxh128_hex: String,
}

/// An envelope with its deterministic `message_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The JSON body.
    pub envelope: Envelope,
    /// Computed on first use: only the AMQP sink sends it, and its SHA-1 was a tenth of the
    /// pipeline's own work per event on stdout, where it is never read.
    message_id: OnceLock<String>,
}

impl Message {
    /// Wraps an envelope.
    pub fn new(envelope: Envelope) -> Self {
        Self {
            envelope,
            message_id: OnceLock::new(),
        }
    }

    /// The AMQP `message_id`: a UUID v5 of instance, event type, exact path bytes, exact old
    /// path bytes and SHA-256. The same event built twice (for example after a crash before the
    /// broker's confirm) gets the same id, so consumers can drop the duplicate.
    pub fn message_id(&self) -> &str {
        self.message_id.get_or_init(|| {
            let e = &self.envelope;
            let info = &e.file_info;
            let path = exact_bytes(&info.path, info.path_base64.as_deref());
            let old = info
                .old_path
                .as_deref()
                .map(|p| exact_bytes(p, info.old_path_base64.as_deref()));
            let mut input = Vec::with_capacity(256);
            for part in [
                e.instance_id.as_bytes(),
                e.event_type.as_str().as_bytes(),
                &path,
                old.as_deref().unwrap_or_default(),
                info.sha256_hash.as_bytes(),
            ] {
                input.extend_from_slice(part);
                input.push(0);
            }
            uuid::Uuid::new_v5(&MESSAGE_ID_NAMESPACE, &input).to_string()
        })
    }

    /// The routing key for this message.
    pub fn routing_key(&self) -> &'static str {
        self.envelope.event_type.routing_key()
    }

    /// The body as compact JSON bytes.
    ///
    /// # Errors
    /// Only if serde_json fails, which plain strings cannot make it do.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut out = Vec::with_capacity(512);
        self.write_json(&mut out)?;
        Ok(out)
    }

    /// Appends the body as compact JSON to `out`, so a caller can reuse one buffer for many
    /// envelopes (the stdout sink does).
    ///
    /// This is plain `serde_json`: a hand-written writer saved about 0.4 µs per event, which is
    /// invisible beside an AMQP publish (about 100 µs) and was measured side by side on
    /// initial-small to the broker before it was removed (docs/performance.md; the runs are in
    /// the CHANGELOG).
    ///
    /// # Errors
    /// Only if serde_json fails, which plain strings cannot make it do.
    pub fn write_json(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        serde_json::to_writer(out, &self.envelope)
    }
}

/// Namespace for message ids (UUID v5), fixed forever so ids stay stable across versions.
const MESSAGE_ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6a0f_3c2e_5b1d_4e8a_9c77_0d2f_41b6_e913);

impl Envelope {
    /// Builds the message for one event. The facts are moved in: their digest strings become
    /// the envelope's own.
    pub fn build(
        event_type: EventType,
        instance_id: &str,
        watched_directory: &Path,
        path: &Path,
        old_path: Option<&Path>,
        facts: FileFacts,
        at: DateTime<Utc>,
    ) -> Message {
        let (path_s, path_b64) = path_strings(path.as_os_str());
        let (old_s, old_b64) = match old_path {
            Some(p) => {
                let (s, b) = path_strings(p.as_os_str());
                (Some(s), b)
            }
            None => (None, None),
        };
        let name = path
            .file_name()
            .map(|n| String::from_utf8_lossy(n.as_bytes()).into_owned())
            .unwrap_or_default();
        let extension = path
            .extension()
            .map(|e| {
                let e = String::from_utf8_lossy(e.as_bytes());
                let mut dotted = String::with_capacity(e.len() + 1);
                dotted.push('.');
                dotted.push_str(&e);
                dotted
            })
            .unwrap_or_default();
        let mut uuid = uuid::Uuid::encode_buffer();
        let correlation_id = uuid::Uuid::new_v4()
            .hyphenated()
            .encode_lower(&mut uuid)
            .to_owned();

        Message::new(Envelope {
            correlation_id,
            timestamp: at.to_rfc3339_opts(SecondsFormat::Micros, true),
            event_type,
            instance_id: instance_id.to_owned(),
            watched_directory: watched_directory.to_string_lossy().into_owned(),
            file_info: FileInfo {
                path: path_s,
                path_base64: path_b64,
                old_path: old_s,
                old_path_base64: old_b64,
                name,
                extension,
                size_bytes: facts.size.to_string(),
                sha256_hash: facts.sha256_hex,
                xxh128_hash: facts.xxh128_hex,
            },
        })
    }
}

/// A path's exact bytes: from `path_base64` when the text had to be lossy, else the text.
fn exact_bytes(text: &str, base64: Option<&str>) -> Vec<u8> {
    base64
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .unwrap_or_else(|| text.as_bytes().to_vec())
}

/// The path as UTF-8 text, plus its exact bytes in base64 when the text had to be lossy.
fn path_strings(p: &OsStr) -> (String, Option<String>) {
    match p.to_str() {
        Some(s) => (s.to_owned(), None),
        None => (
            String::from_utf8_lossy(p.as_bytes()).into_owned(),
            Some(base64::engine::general_purpose::STANDARD.encode(p.as_bytes())),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_move_is_a_rename_only_within_one_directory() {
        let cases = [
            ("/d/a", "/d/b", EventType::FileRenamed),
            ("/d/a", "/d/x/a", EventType::FileMoved),
            ("/d/x/a", "/d/y/b", EventType::FileMoved),
            ("/d/x/a", "/d/x/a.old", EventType::FileRenamed),
        ];
        for (from, to, want) in cases {
            assert_eq!(
                EventType::of_move(Path::new(from), Path::new(to)),
                want,
                "{from} → {to}"
            );
        }
    }
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;

    fn facts() -> FileFacts {
        FileFacts {
            size: 5_242_880,
            sha256_hex: "a".repeat(64),
            xxh128_hex: "b".repeat(32),
        }
    }

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 8, 28, 10, 0, 0).unwrap()
            + chrono::Duration::microseconds(123_456)
    }

    #[test]
    fn timestamp_is_rfc3339_utc_with_z() {
        let m = Envelope::build(
            EventType::FileDiscovered,
            "i",
            Path::new("/d"),
            Path::new("/d/a.mp3"),
            None,
            facts(),
            at(),
        );
        assert_eq!(m.envelope.timestamp, "2025-08-28T10:00:00.123456Z");
        assert_eq!(
            uuid::Uuid::parse_str(&m.envelope.correlation_id)
                .unwrap()
                .get_version_num(),
            4
        );
    }

    #[test]
    fn message_id_is_deterministic_and_distinguishes_events() {
        let build = |t, p: &str, old: Option<&str>| {
            Envelope::build(
                t,
                "i",
                Path::new("/d"),
                Path::new(p),
                old.map(Path::new),
                facts(),
                at(),
            )
        };
        let a = build(EventType::FileCreated, "/d/a", None);
        let b = build(EventType::FileCreated, "/d/a", None);
        assert_eq!(a.message_id(), b.message_id());
        assert_ne!(a.envelope.correlation_id, b.envelope.correlation_id);
        assert_ne!(
            a.message_id(),
            build(EventType::FileModified, "/d/a", None).message_id()
        );
        assert_ne!(
            a.message_id(),
            build(EventType::FileCreated, "/d/b", None).message_id()
        );
        assert_ne!(
            build(EventType::FileMoved, "/d/x/a", Some("/d/a")).message_id(),
            build(EventType::FileMoved, "/d/x/a", Some("/d/y/a")).message_id()
        );
    }

    /// The id is a UUID v5 over the exact path bytes (not the lossy text), NUL-separated; ids
    /// must never change between versions, or consumers would stop recognising re-sends.
    #[test]
    fn message_id_is_pinned_to_exact_path_bytes() {
        let raw = b"/d/caf\xe9.mp3".to_vec();
        let old = b"/d/x/caf\xe9.mp3".to_vec();
        let m = Envelope::build(
            EventType::FileMoved,
            "music",
            Path::new("/d"),
            Path::new(OsStr::from_bytes(&raw)),
            Some(Path::new(OsStr::from_bytes(&old))),
            facts(),
            at(),
        );
        let mut input = b"music\0file_moved\0".to_vec();
        input.extend_from_slice(&raw);
        input.push(0);
        input.extend_from_slice(&old);
        input.push(0);
        input.extend_from_slice("a".repeat(64).as_bytes());
        input.push(0);
        let expected = uuid::Uuid::new_v5(&MESSAGE_ID_NAMESPACE, &input).to_string();
        assert_eq!(m.message_id(), expected);
        // The lossy text alone would give another id.
        assert_ne!(
            m.message_id(),
            Envelope::build(
                EventType::FileMoved,
                "music",
                Path::new("/d"),
                Path::new(&m.envelope.file_info.path),
                Some(Path::new(m.envelope.file_info.old_path.as_deref().unwrap())),
                facts(),
                at(),
            )
            .message_id()
        );
    }

    #[test]
    fn non_utf8_path_keeps_exact_bytes() {
        let raw = b"/d/caf\xe9.mp3".to_vec();
        let p = std::path::PathBuf::from(OsString::from_vec(raw.clone()));
        let m = Envelope::build(
            EventType::FileCreated,
            "i",
            Path::new("/d"),
            &p,
            None,
            facts(),
            at(),
        );
        let info = &m.envelope.file_info;
        assert_eq!(info.path, "/d/caf\u{fffd}.mp3");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(info.path_base64.as_ref().unwrap())
            .unwrap();
        assert_eq!(decoded, raw);
        assert_eq!(info.extension, ".mp3");
    }

    #[test]
    fn no_extension_is_empty_string() {
        let m = Envelope::build(
            EventType::FileCreated,
            "i",
            Path::new("/d"),
            Path::new("/d/README"),
            None,
            facts(),
            at(),
        );
        assert_eq!(m.envelope.file_info.extension, "");
        assert_eq!(m.envelope.file_info.name, "README");
    }
}
