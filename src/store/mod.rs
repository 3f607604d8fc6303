//! The browser's model store, the parts that are plain Rust (and tested natively): how a model
//! file is cut into pieces, which version of the file stored pieces belong to, what a Range
//! answer must say to be taken, the running SHA-256, and the store's errors. The OPFS I/O and
//! the downloads are in `wasm::model_store`.
//!
//! A stored model is a directory: `meta.json` ([`EntryMeta`]: the URL, the server's version of
//! the file, the piece size) and one file per downloaded piece (`p0`, `p1`, …). A piece file is
//! written whole and committed atomically (OPFS's writable streams commit on close), so a piece
//! file that exists with its piece's length holds that piece: the directory listing is the
//! record of what a resumed download still needs.

use std::ops::Range;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::gguf::GgufError;

/// The default piece: 16 MiB (a 4.9 GB model in ~300 pieces; a dropped connection costs at most
/// one piece).
pub const DEFAULT_PIECE_BYTES: u64 = 16 << 20;

/// The smallest piece a caller may ask for (tests cut the tiny models into several pieces).
pub const MIN_PIECE_BYTES: u64 = 4 << 10;

/// A file of `file_len` bytes cut into pieces of `piece_bytes` (the last one shorter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pieces {
    /// The file's length in bytes.
    pub file_len: u64,
    /// Every piece's length but the last one's.
    pub piece_bytes: u64,
}

impl Pieces {
    /// The pieces of a `file_len`-byte file; `piece_bytes` is raised to [`MIN_PIECE_BYTES`].
    pub fn new(file_len: u64, piece_bytes: u64) -> Self {
        Self {
            file_len,
            piece_bytes: piece_bytes.max(MIN_PIECE_BYTES),
        }
    }

    /// How many pieces.
    pub fn count(&self) -> u32 {
        self.file_len.div_ceil(self.piece_bytes) as u32
    }

    /// The bytes of piece `index`.
    pub fn range(&self, index: u32) -> Range<u64> {
        let start = index as u64 * self.piece_bytes;
        start.min(self.file_len)..(start + self.piece_bytes).min(self.file_len)
    }

    /// The pieces that hold any of `offset..offset + len` (none when `len` is 0).
    pub fn covering(&self, offset: u64, len: u64) -> Range<u32> {
        let end = offset.saturating_add(len).min(self.file_len);
        if offset >= end {
            return 0..0;
        }
        (offset / self.piece_bytes) as u32..end.div_ceil(self.piece_bytes) as u32
    }

    /// The name of piece `index`'s file.
    pub fn file_name(index: u32) -> String {
        format!("p{index}")
    }

    /// The piece a file name holds, if it is a piece file.
    pub fn index_of(file_name: &str) -> Option<u32> {
        file_name.strip_prefix('p')?.parse().ok()
    }
}

/// Which version of a file a server holds, as its answers describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileVersion {
    /// The file's length (from `Content-Range`).
    pub len: u64,
    /// The `ETag` header, when the server sends one (and CORS exposes it).
    pub etag: Option<String>,
    /// The `Last-Modified` header, likewise.
    pub last_modified: Option<String>,
}

impl FileVersion {
    /// Why `later` (another answer for the same URL) is not this version; `None` when nothing
    /// the two answers say differs. An absent header proves nothing either way.
    pub fn differs(&self, later: &FileVersion) -> Option<String> {
        if self.len != later.len {
            return Some(format!(
                "its size went from {} to {} bytes",
                self.len, later.len
            ));
        }
        if let (Some(a), Some(b)) = (&self.etag, &later.etag) {
            // A weak validator (W/"…") names the same version as its strong form.
            if a.trim_start_matches("W/") != b.trim_start_matches("W/") {
                return Some(format!("its ETag went from {a} to {b}"));
            }
            return None;
        }
        match (&self.last_modified, &later.last_modified) {
            (Some(a), Some(b)) if a != b => Some(format!("its Last-Modified went from {a} to {b}")),
            _ => None,
        }
    }
}

/// A `Content-Range: bytes START-END/TOTAL` header (TOTAL may be `*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentRange {
    /// The first byte sent.
    pub start: u64,
    /// The last byte sent (inclusive, as HTTP counts).
    pub end_inclusive: u64,
    /// The file's length, when the server knows it.
    pub total: Option<u64>,
}

impl ContentRange {
    /// Parses the header's value; `None` when it is not a byte range.
    pub fn parse(value: &str) -> Option<Self> {
        let rest = value.trim().strip_prefix("bytes")?.trim_start();
        let (span, total) = rest.split_once('/')?;
        let (start, end) = span.trim().split_once('-')?;
        let (start, end_inclusive) = (start.trim().parse().ok()?, end.trim().parse().ok()?);
        let total = match total.trim() {
            "*" => None,
            t => Some(t.parse().ok()?),
        };
        (start <= end_inclusive && total.is_none_or(|t| end_inclusive < t)).then_some(Self {
            start,
            end_inclusive,
            total,
        })
    }

    /// Checks that this answer carries `asked` (clamped to the file's end) of a file of
    /// `file_len` bytes, and says how many of its first bytes to keep: all of them when it is
    /// exactly what was asked; the asked length when it starts there but runs on (Vite's dev
    /// server, through sirv, answers `bytes=0-0` with the whole file). The message says what was
    /// wrong.
    pub fn check(&self, asked: Range<u64>, file_len: u64) -> Result<u64, String> {
        let want_end = asked.end.min(file_len);
        if let Some(total) = self.total
            && total != file_len
        {
            return Err(format!("the file is now {total} bytes, not {file_len}"));
        }
        if self.start != asked.start || self.end_inclusive + 1 < want_end {
            return Err(format!(
                "asked for bytes {}-{}, the server sent {}-{}",
                asked.start,
                want_end.saturating_sub(1),
                self.start,
                self.end_inclusive
            ));
        }
        Ok(want_end - asked.start)
    }
}

/// A stored model's description, `meta.json` in its directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryMeta {
    /// The model's URL, as the page gave it.
    pub url: String,
    /// The version of the file the pieces belong to.
    pub version: FileVersion,
    /// The piece size the pieces were cut with.
    pub piece_bytes: u64,
    /// Every piece is stored.
    pub complete: bool,
    /// The SHA-256 (lowercase hex) the whole file was checked against, once it was.
    pub verified_sha256: Option<String>,
    /// When a load last used it (milliseconds since the Unix epoch).
    pub last_used_ms: f64,
}

/// The directory name of a URL's stored model: the first 16 bytes of the URL's SHA-256 in hex.
pub fn entry_key(url: &str) -> String {
    hex(&Sha256::digest(url.as_bytes())[..16])
}

/// A caller's `sha256` option as lowercase hex, or why it is not one.
pub fn parse_sha256(given: &str) -> Result<String, String> {
    let hex = given.trim().to_ascii_lowercase();
    match hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        true => Ok(hex),
        false => Err(format!(
            "local.sha256 `{given}` is not 64 hexadecimal digits"
        )),
    }
}

/// The SHA-256 of a file, fed its pieces in order as they become available.
#[derive(Debug, Clone, Default)]
pub struct PieceHasher {
    hasher: Sha256,
    next: u32,
}

impl PieceHasher {
    /// The piece the hash needs next.
    pub fn next_piece(&self) -> u32 {
        self.next
    }

    /// Hashes the next piece's bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.next += 1;
    }

    /// The hash of everything fed, in lowercase hex.
    pub fn finish(self) -> String {
        hex(&self.hasher.finalize())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why the store could not provide a model's bytes.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The browser's storage cannot take the rest of the model.
    #[error(
        "not enough browser storage for the model: {needed} more bytes are needed, {available} are available"
    )]
    Quota {
        /// Bytes still to store.
        needed: u64,
        /// Bytes the origin may still use.
        available: u64,
    },
    /// The file on the server is not the version the load began with.
    #[error(
        "{url} changed on the server ({reason}); its stored pieces were discarded, load it again"
    )]
    Changed {
        /// The model's URL.
        url: String,
        /// What differed.
        reason: String,
    },
    /// The network or the server failed (after the retries), or the load was aborted.
    #[error("{0}")]
    Fetch(String),
    /// The whole file's SHA-256 is not the one the caller gave.
    #[error("the model's SHA-256 is {actual}, not the expected {expected}; nothing was kept")]
    Checksum {
        /// The caller's hash.
        expected: String,
        /// The file's.
        actual: String,
    },
    /// The browser's storage failed otherwise.
    #[error("the browser's model store failed: {0}")]
    Storage(String),
    /// The bytes are not a GGUF file we can read.
    #[error(transparent)]
    Gguf(#[from] GgufError),
}
