//! Opening a stored model: the file found (one small request), its store entry resumed or
//! discarded, its header read.

use std::cell::{Cell, RefCell};

use web_sys::AbortSignal;

use super::{
    Entry, FIRST_PREFIX, MAX_HEADER, StoreOptions, StoredSource, range_error, read_meta, write_meta,
};
use crate::gguf::{GgufError, GgufHeader, MemorySource};
use crate::store::{EntryMeta, PieceHasher, Pieces, StoreError, entry_key};
use crate::wasm::opfs::{self, Dir, EntryLock};
use crate::wasm::range_fetch::{RangeError, get_range, time_limit_ms};

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
}
