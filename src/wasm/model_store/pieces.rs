//! Reading a stored model: the pieces a read needs, read back from the store or downloaded a
//! few at a time and stored first, the running hash fed in order, every answer's version
//! checked.

use std::ops::Range;

use futures_util::future::join_all;

use super::{Entry, PARALLEL, StoredSource, range_error, write_meta};
use crate::store::{FileVersion, Pieces, StoreError};
use crate::wasm::range_fetch::{get_range, time_limit_ms};

impl StoredSource {
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
    pub(super) async fn read(&self, offset: u64, len: u64) -> Result<Vec<u8>, StoreError> {
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
