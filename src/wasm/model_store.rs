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

use std::cell::{Cell, RefCell};
use std::ops::Range;

use futures_util::future::join_all;
use web_sys::AbortSignal;

use super::opfs::{self, Dir, EntryLock};
use super::range_fetch::{RangeError, get_range, time_limit_ms};
use crate::gguf::{ByteSource, GgufError, GgufHeader, MemorySource};
use crate::store::{
    DEFAULT_PIECE_BYTES, EntryMeta, FileVersion, PieceHasher, Pieces, StoreError, entry_key,
};

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
    /// [`time_limit_ms`]).
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

impl StoredSource {
    /// Finds the file at `url` (one small request), sets up its store entry — resumed, or
    /// discarded when the server's file is another version — and reads the header.
    pub async fn open(
        url: &str,
        options: &StoreOptions,
        signal: Option<AbortSignal>,
    ) -> Result<(Self, GgufHeader), StoreError> {
        let root = match options.enabled {
            true => Dir::root().await,
            false => None,
        };
        let key = entry_key(url);
        let lock = match &root {
            Some(_) => Some(EntryLock::acquire(&key, signal.as_ref()).await?),
            None => None,
        };
        let (dir, stored_meta) = match &root {
            Some(root) => match root.child(&key, false).await? {
                Some(dir) => {
                    let meta = read_meta(&dir).await;
                    (Some(dir), meta)
                }
                None => (None, None),
            },
            None => (None, None),
        };
        let limit = time_limit_ms(1, options.piece_timeout_seconds);
        let version = match get_range(url, 0..1, signal.as_ref(), limit).await {
            Ok(answer) => answer.version,
            // Offline with the whole file stored: use it.
            Err(RangeError::Failed(m)) => match &stored_meta {
                Some(meta) if meta.complete => {
                    log::warn!("{m}; using the stored copy");
                    meta.version.clone()
                }
                _ => return Err(StoreError::Fetch(m)),
            },
            Err(e) => return Err(range_error(url, e, 1)),
        };
        let mut source = Self {
            url: url.to_string(),
            pieces: Pieces::new(version.len, options.piece_bytes),
            version: version.clone(),
            entry: None,
            prefix: MemorySource::new(Vec::new()),
            signal,
            loaded: Cell::new(0),
            downloaded: Cell::new(0),
            to_download: Cell::new(version.len),
            _lock: lock,
            piece_timeout_seconds: options.piece_timeout_seconds,
            from_cache: false,
            failure: RefCell::new(None),
        };
        if let Some(root) = root {
            let meta = match (stored_meta, dir) {
                (Some(meta), Some(_)) if meta.version.differs(&source.version).is_none() => {
                    Some(meta)
                }
                (_, Some(_)) => {
                    root.remove(&key).await?;
                    None
                }
                _ => None,
            };
            source.entry = Some(source.open_entry(root, key, meta, options).await?);
        }
        let header = source.read_header().await?;
        Ok((source, header))
    }

    async fn open_entry(
        &mut self,
        root: Dir,
        key: String,
        meta: Option<EntryMeta>,
        options: &StoreOptions,
    ) -> Result<Entry, StoreError> {
        let dir = root.child(&key, true).await?.ok_or_else(|| {
            StoreError::Storage(format!("could not create the entry for {}", self.url))
        })?;
        let mut meta = meta.unwrap_or_else(|| EntryMeta {
            url: self.url.clone(),
            version: self.version.clone(),
            piece_bytes: self.pieces.piece_bytes,
            complete: false,
            verified_sha256: None,
            last_used_ms: 0.0,
        });
        // Resumed pieces keep the size they were cut with.
        self.pieces = Pieces::new(self.version.len, meta.piece_bytes);
        let mut present = vec![false; self.pieces.count() as usize];
        let mut stored = 0;
        for (name, size) in dir.files().await? {
            if let Some(i) = Pieces::index_of(&name).filter(|&i| i < self.pieces.count()) {
                let range = self.pieces.range(i);
                if size == range.end - range.start {
                    present[i as usize] = true;
                    stored += size;
                }
            }
        }
        self.from_cache = present.iter().all(|&p| p);
        let needed = self.version.len - stored;
        self.to_download.set(needed);
        if needed > 0
            && let Some(available) = opfs::available_bytes().await
            && needed > available
        {
            if stored == 0 {
                root.remove(&key).await?;
            }
            return Err(StoreError::Quota { needed, available });
        }
        opfs::ask_persistence();
        meta.complete = self.from_cache;
        meta.last_used_ms = js_sys::Date::now();
        let hash = options
            .sha256
            .clone()
            .filter(|want| meta.verified_sha256.as_ref() != Some(want))
            .map(|want| (PieceHasher::default(), want));
        write_meta(&dir, &meta).await?;
        Ok(Entry {
            root,
            key,
            dir,
            meta: RefCell::new(meta),
            present: RefCell::new(present),
            hash: RefCell::new(hash),
        })
    }

    async fn read_header(&mut self) -> Result<GgufHeader, StoreError> {
        let total = self.version.len;
        let mut want = FIRST_PREFIX.min(total);
        let mut bytes = Vec::new();
        loop {
            // Each round fetches only what the prefix lacks.
            let have = bytes.len() as u64;
            bytes.extend(self.read(have, want - have).await?);
            self.prefix = MemorySource::new(bytes);
            match GgufHeader::read(&*self) {
                Ok(header) => {
                    // The prefix may reach into the tensors: count only the header as read.
                    self.loaded.set(header.data_offset().min(total));
                    return Ok(header);
                }
                Err(GgufError::Truncated { needed_end, .. })
                    if needed_end <= total && want < total =>
                {
                    if needed_end > MAX_HEADER {
                        return Err(GgufError::Implausible {
                            what: "header size".into(),
                            value: needed_end,
                            limit: MAX_HEADER,
                        }
                        .into());
                    }
                    want = needed_end.max(want * 2).min(total).min(MAX_HEADER);
                    bytes = std::mem::replace(&mut self.prefix, MemorySource::new(Vec::new()))
                        .into_inner();
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

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

    /// After the load: fetches any piece no tensor touched, checks the caller's `sha256`
    /// (a mismatch discards the entry) and marks the entry complete.
    pub async fn finish(&self) -> Result<(), StoreError> {
        let Some(entry) = &self.entry else {
            return Ok(());
        };
        let missing: Vec<u32> = (0..self.pieces.count())
            .filter(|&i| !entry.present.borrow()[i as usize])
            .collect();
        for group in missing.chunks(PARALLEL) {
            self.download(entry, group).await?;
        }
        self.advance_hash(entry, None).await?;
        let checked = entry.hash.borrow_mut().take();
        let mut meta = entry.meta.borrow().clone();
        if let Some((hasher, expected)) = checked {
            let actual = hasher.finish();
            if actual != expected {
                entry.root.remove(&entry.key).await?;
                return Err(StoreError::Checksum { expected, actual });
            }
            meta.verified_sha256 = Some(expected);
        }
        meta.complete = true;
        write_meta(&entry.dir, &meta).await?;
        *entry.meta.borrow_mut() = meta;
        Ok(())
    }

    /// `len` bytes from `offset`: the stored pieces read back, the missing ones downloaded
    /// (a few at a time) and stored first.
    async fn read(&self, offset: u64, len: u64) -> Result<Vec<u8>, StoreError> {
        let Some(entry) = &self.entry else {
            let limit = time_limit_ms(len, self.piece_timeout_seconds);
            let answer = get_range(&self.url, offset..offset + len, self.signal.as_ref(), limit)
                .await
                .map_err(|e| range_error(&self.url, e, offset + len))?;
            self.check_version(&answer.version)?;
            self.downloaded.set(self.downloaded.get() + len);
            return Ok(answer.bytes);
        };
        let mut out = vec![0u8; len as usize];
        // The part of piece `index` inside the range asked for, in file offsets.
        let overlap = |index: u32| {
            let piece = self.pieces.range(index);
            offset.max(piece.start)..(offset + len).min(piece.end)
        };
        // Copies `part` out of `bytes`, which begin at file offset `bytes_start`.
        let mut put = |part: Range<u64>, bytes: &[u8], bytes_start: u64| {
            out[(part.start - offset) as usize..(part.end - offset) as usize].copy_from_slice(
                &bytes[(part.start - bytes_start) as usize..(part.end - bytes_start) as usize],
            );
        };
        let covering = self.pieces.covering(offset, len);
        let missing: Vec<u32> = covering
            .clone()
            .filter(|&i| !entry.present.borrow()[i as usize])
            .collect();
        for group in missing.chunks(PARALLEL) {
            for (&index, bytes) in group.iter().zip(self.download(entry, group).await?) {
                put(overlap(index), &bytes, self.pieces.range(index).start);
            }
        }
        for index in covering.filter(|i| !missing.contains(i)) {
            let part = overlap(index);
            let within = part.start - self.pieces.range(index).start;
            let bytes = self
                .read_piece(entry, index, within, part.end - part.start)
                .await?;
            put(part.clone(), &bytes, part.start);
        }
        self.loaded.set(self.loaded.get() + len);
        Ok(out)
    }

    /// Downloads and stores the pieces `group` at once; their bytes, in order.
    async fn download(&self, entry: &Entry, group: &[u32]) -> Result<Vec<Vec<u8>>, StoreError> {
        let fetches = group.iter().map(|&i| {
            let range = self.pieces.range(i);
            let limit = time_limit_ms(range.end - range.start, self.piece_timeout_seconds);
            get_range(&self.url, range.clone(), self.signal.as_ref(), limit)
        });
        let mut pieces = Vec::with_capacity(group.len());
        for (&index, answer) in group.iter().zip(join_all(fetches).await) {
            let end = self.pieces.range(index).end;
            let answer = answer.map_err(|e| range_error(&self.url, e, end))?;
            if let Err(e) = self.check_version(&answer.version) {
                entry.root.remove(&entry.key).await?;
                return Err(e);
            }
            entry
                .dir
                .write(&Pieces::file_name(index), &answer.bytes)
                .await?;
            entry.present.borrow_mut()[index as usize] = true;
            let fetched = answer.bytes.len() as u64;
            self.downloaded.set(self.downloaded.get() + fetched);
            self.advance_hash(entry, Some((index, &answer.bytes)))
                .await?;
            pieces.push(answer.bytes);
        }
        Ok(pieces)
    }

    /// Feeds the running hash every stored piece it can take in order (`fresh`: a piece's
    /// bytes at hand, so it is not read back).
    async fn advance_hash(
        &self,
        entry: &Entry,
        fresh: Option<(u32, &[u8])>,
    ) -> Result<(), StoreError> {
        loop {
            let next = match &*entry.hash.borrow() {
                Some((hasher, _)) => hasher.next_piece(),
                None => return Ok(()),
            };
            if next >= self.pieces.count() || !entry.present.borrow()[next as usize] {
                return Ok(());
            }
            let stored;
            let bytes = match fresh {
                Some((index, bytes)) if index == next => bytes,
                _ => {
                    let range = self.pieces.range(next);
                    stored = self
                        .read_piece(entry, next, 0, range.end - range.start)
                        .await?;
                    &stored[..]
                }
            };
            if let Some((hasher, _)) = &mut *entry.hash.borrow_mut() {
                hasher.feed(bytes);
            }
        }
    }

    async fn read_piece(
        &self,
        entry: &Entry,
        index: u32,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, StoreError> {
        let name = Pieces::file_name(index);
        match entry.dir.read(&name, offset, len).await? {
            Some(bytes) if bytes.len() as u64 == len => Ok(bytes),
            _ => Err(StoreError::Storage(format!(
                "the stored piece {name} of {} went missing; load the model again",
                self.url
            ))),
        }
    }

    fn check_version(&self, answer: &FileVersion) -> Result<(), StoreError> {
        match self.version.differs(answer) {
            None => Ok(()),
            Some(reason) => Err(StoreError::Changed {
                url: self.url.clone(),
                reason,
            }),
        }
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
