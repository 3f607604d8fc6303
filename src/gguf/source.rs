//! Ranged byte sources: where GGUF bytes come from (a file, memory, or — in the browser — the
//! header fetched into memory and the tensors fetched by HTTP Range requests one at a time).

use std::cell::Cell;

use super::error::GgufError;

/// Random access to a byte sequence of known length.
pub trait ByteSource {
    /// Total length in bytes.
    fn len(&self) -> u64;

    /// Whether the source holds no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fills `buf` with the bytes at `offset..offset + buf.len()`. A range past the end is a
    /// [`GgufError::Truncated`]; an I/O failure is a [`GgufError::Source`].
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), GgufError>;

    /// The `len` bytes at `offset`, for sources that must wait for them (a network fetch):
    /// model loading reads every tensor through this. By default a [`ByteSource::read_exact_at`].
    fn fetch(
        &self,
        offset: u64,
        len: u64,
    ) -> impl std::future::Future<Output = Result<Vec<u8>, GgufError>> {
        let read = check_range(offset, len, self.len(), "read").and_then(|()| {
            let mut bytes = vec![0u8; len as usize];
            self.read_exact_at(offset, &mut bytes).map(|()| bytes)
        });
        std::future::ready(read)
    }
}

/// Checks that `offset..offset + len` lies inside a source of `source_len` bytes.
pub(crate) fn check_range(
    offset: u64,
    len: u64,
    source_len: u64,
    what: &str,
) -> Result<(), GgufError> {
    match offset.checked_add(len) {
        Some(end) if end <= source_len => Ok(()),
        end => Err(GgufError::Truncated {
            what: what.to_string(),
            needed_end: end.unwrap_or(u64::MAX),
            file_len: source_len,
        }),
    }
}

/// Bytes in memory: a whole small file, or the prefix of a large one fetched so far.
#[derive(Debug, Clone)]
pub struct MemorySource<B: AsRef<[u8]>> {
    bytes: B,
}

impl<B: AsRef<[u8]>> MemorySource<B> {
    /// Wraps the bytes.
    pub fn new(bytes: B) -> Self {
        Self { bytes }
    }

    /// The bytes back (to extend a prefix).
    pub fn into_inner(self) -> B {
        self.bytes
    }
}

impl<B: AsRef<[u8]>> ByteSource for MemorySource<B> {
    fn len(&self) -> u64 {
        self.bytes.as_ref().len() as u64
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), GgufError> {
        check_range(offset, buf.len() as u64, self.len(), "read")?;
        let start = offset as usize; // in range: checked against a usize-sized slice
        buf.copy_from_slice(&self.bytes.as_ref()[start..start + buf.len()]);
        Ok(())
    }
}

/// A file on disk, read with positioned reads (no shared cursor).
#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug)]
pub struct FileSource {
    file: std::fs::File,
    len: u64,
}

#[cfg(not(target_arch = "wasm32"))]
impl FileSource {
    /// Opens the file at `path`.
    pub fn open(path: impl AsRef<std::path::Path>) -> Result<Self, GgufError> {
        let path = path.as_ref();
        let io = |e: std::io::Error| GgufError::Source {
            offset: 0,
            end: 0,
            reason: format!("{}: {e}", path.display()),
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        Ok(Self { file, len })
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl ByteSource for FileSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), GgufError> {
        use std::os::unix::fs::FileExt;
        check_range(offset, buf.len() as u64, self.len, "read")?;
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| GgufError::Source {
                offset,
                end: offset + buf.len() as u64,
                reason: e.to_string(),
            })
    }
}

/// Wraps a source and counts the bytes and reads asked of it: how much of a file an
/// operation touches.
#[derive(Debug)]
pub struct CountingSource<S> {
    inner: S,
    bytes: Cell<u64>,
    reads: Cell<u64>,
}

impl<S: ByteSource> CountingSource<S> {
    /// Wraps `inner` with zeroed counters.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            bytes: Cell::new(0),
            reads: Cell::new(0),
        }
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes.get()
    }

    /// Read calls so far.
    pub fn reads(&self) -> u64 {
        self.reads.get()
    }
}

impl<S: ByteSource> ByteSource for CountingSource<S> {
    fn len(&self) -> u64 {
        self.inner.len()
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), GgufError> {
        self.bytes.set(self.bytes.get() + buf.len() as u64);
        self.reads.set(self.reads.get() + 1);
        self.inner.read_exact_at(offset, buf)
    }
}
