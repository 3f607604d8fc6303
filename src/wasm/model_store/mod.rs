//! A GGUF model file behind a URL, kept in the browser's model store (OPFS) as it downloads.
//!
//! The file is fetched in pieces ([`Pieces`]) by Range requests, a few at a time, each retried
//! with backoff, each written to the store whole before it is used, so a reload or a dropped
//! connection resumes with the pieces already there and a second load reads the store after one
//! 1-byte revalidation request. Every answer's version (length, `ETag`, `Last-Modified`) must be
//! the one the load began with: a file changed on the server is detected, its old pieces are
//! discarded, never mixed. A caller's `sha256` is checked over the pieces in order as they
//! arrive. Reads follow the loader: the header, then tensor by tensor, so the whole file is
//! never in wasm memory. Without OPFS (or with the store turned off) the same reads go straight
//! to the network.
//!
//! Opening (the entry, the header) is in `open`, reading the pieces in `pieces`.

use std::cell::{Cell, RefCell};

use web_sys::AbortSignal;

use super::opfs::{Dir, EntryLock};
use super::range_fetch::RangeError;
use crate::gguf::{ByteSource, GgufError, MemorySource};
use crate::store::{DEFAULT_PIECE_BYTES, EntryMeta, FileVersion, PieceHasher, Pieces, StoreError};

/// The first guess at the header's size; it doubles (or jumps to what the parser asks for)
/// until the header parses. Llama 3.1's header with its 128k-token vocabulary is ~9 MB.
const FIRST_PREFIX: u64 = 4 << 20;

/// The largest header read: Llama 3.1's is ~9 MB; a file claiming more is refused (`bad_model`)
/// rather than fetched in ever larger prefixes.
const MAX_HEADER: u64 = 64 << 20;

/// Pieces downloaded at once.
const PARALLEL: usize = 3;

/// The entry's description file.
pub(super) const META: &str = "meta.json";

/// How a load uses the store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Keep the file in the store (default); `false` streams it without storing.
    pub enabled: bool,
    /// Piece size for a new download (default [`DEFAULT_PIECE_BYTES`]).
    pub piece_bytes: u64,
    /// The file's SHA-256 (lowercase hex), checked before the model is kept as complete.
    pub sha256: Option<String>,
    /// Seconds one Range request may take before it is sent again (default: by its size,
    /// `range_fetch::time_limit_ms`).
    pub piece_timeout_seconds: Option<f64>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            piece_bytes: DEFAULT_PIECE_BYTES,
            sha256: None,
            piece_timeout_seconds: None,
        }
    }
}

/// A model file read through the store.
pub struct StoredSource {
    url: String,
    version: FileVersion,
    pieces: Pieces,
    entry: Option<Entry>,
    /// The file's first bytes (all of the header).
    prefix: MemorySource<Vec<u8>>,
    signal: Option<AbortSignal>,
    /// Bytes the load has read so far (progress).
    loaded: Cell<u64>,
    /// Bytes fetched over the network so far, and the bytes the load must fetch (the ETA).
    downloaded: Cell<u64>,
    to_download: Cell<u64>,
    /// Held while this load uses its store entry.
    _lock: Option<EntryLock>,
    /// `StoreOptions::piece_timeout_seconds`.
    piece_timeout_seconds: Option<f64>,
    /// The entry was complete when the load began: the progress phase is `cache`.
    from_cache: bool,
    /// The typed cause of the last failed read (the loader only sees a `GgufError`).
    failure: RefCell<Option<StoreError>>,
}

/// The stored pieces of one file.
struct Entry {
    root: Dir,
    key: String,
    dir: Dir,
    meta: RefCell<EntryMeta>,
    present: RefCell<Vec<bool>>,
    /// The running check of the caller's `sha256`, and the hash it must reach.
    hash: RefCell<Option<(PieceHasher, String)>>,
}

mod open;
mod pieces;

impl StoredSource {
    /// Bytes of the file the load has read so far.
    pub fn loaded(&self) -> u64 {
        self.loaded.get()
    }

    /// Seconds left at the rate so far, `seconds` into the load: by the bytes fetched over the
    /// network while downloading (pieces already stored are not counted as progress), by the
    /// bytes read while reading the store. `None` before there is a rate.
    pub fn eta_seconds(&self, seconds: f64) -> Option<f64> {
        let (moved, left) = match self.from_cache {
            true => (
                self.loaded.get(),
                self.len().saturating_sub(self.loaded.get()),
            ),
            false => {
                let downloaded = self.downloaded.get();
                (
                    downloaded,
                    self.to_download.get().saturating_sub(downloaded),
                )
            }
        };
        (moved > 0 && seconds > 0.0).then(|| seconds / moved as f64 * left as f64)
    }

    /// The progress phase: `"cache"` when the whole file was stored, else `"download"`.
    pub fn phase(&self) -> &'static str {
        match self.from_cache {
            true => "cache",
            false => "download",
        }
    }

    /// The typed cause of the last failed tensor read.
    pub fn take_failure(&self) -> Option<StoreError> {
        self.failure.borrow_mut().take()
    }
}

impl ByteSource for StoredSource {
    fn len(&self) -> u64 {
        self.version.len
    }

    /// Reads within the header (beyond it: `Truncated`); tensors are read with
    /// [`ByteSource::fetch`].
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), GgufError> {
        self.prefix.read_exact_at(offset, buf)
    }

    async fn fetch(&self, offset: u64, len: u64) -> Result<Vec<u8>, GgufError> {
        crate::gguf::check_range(offset, len, self.version.len, "tensor")?;
        self.read(offset, len).await.map_err(|e| {
            let error = GgufError::Source {
                offset,
                end: offset + len,
                reason: e.to_string(),
            };
            *self.failure.borrow_mut() = Some(e);
            error
        })
    }
}

fn range_error(url: &str, e: RangeError, needed_end: u64) -> StoreError {
    match e {
        RangeError::Failed(m) => StoreError::Fetch(m),
        RangeError::Aborted => StoreError::Fetch(format!("{url}: the load was aborted")),
        RangeError::Unsatisfiable => StoreError::Gguf(GgufError::Truncated {
            what: "file".into(),
            needed_end,
            file_len: 0,
        }),
    }
}

/// The entry's description, when it has a readable one.
pub(super) async fn read_meta(dir: &Dir) -> Option<EntryMeta> {
    let bytes = dir.read(META, 0, 1 << 20).await.ok()??;
    serde_json::from_slice(&bytes).ok()
}

async fn write_meta(dir: &Dir, meta: &EntryMeta) -> Result<(), StoreError> {
    let json = serde_json::to_vec(meta).map_err(|e| StoreError::Storage(e.to_string()))?;
    dir.write(META, &json).await
}
