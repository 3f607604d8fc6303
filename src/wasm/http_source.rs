//! A GGUF file on a web server, read with HTTP Range requests: the header (metadata, tokenizer,
//! tensor table) is fetched into memory, growing until it parses; each tensor is fetched on its
//! own while the model loads, so the whole file is never in wasm memory.

use std::cell::Cell;

use gloo_net::http::Request;
use web_sys::AbortSignal;

use crate::gguf::{ByteSource, GgufError, GgufHeader, MemorySource};

/// The first guess at the header's size; it doubles (or jumps to what the parser asks for)
/// until the header parses. Llama 3.1's header with its 128k-token vocabulary is ~9 MB.
const FIRST_PREFIX: u64 = 4 << 20;

/// A GGUF file behind a URL.
#[derive(Debug)]
pub struct HttpSource {
    url: String,
    len: u64,
    /// The file's first bytes (all of the header).
    prefix: MemorySource<Vec<u8>>,
    signal: Option<AbortSignal>,
    /// Progress: the header's bytes, then every tensor's as it is fetched.
    fetched: Cell<u64>,
}

/// Why a model file could not be read.
#[derive(Debug)]
pub enum HttpSourceError {
    /// The network or the server failed (status, CORS, no Range support, abort).
    Fetch(String),
    /// The bytes are not a GGUF file we can read.
    Gguf(GgufError),
}

impl HttpSource {
    /// Fetches the header of the file at `url` and parses it.
    pub async fn open(
        url: &str,
        signal: Option<AbortSignal>,
    ) -> Result<(Self, GgufHeader), HttpSourceError> {
        let mut source = Self {
            url: url.to_string(),
            len: 0,
            prefix: MemorySource::new(Vec::new()),
            signal,
            fetched: Cell::new(0),
        };
        let mut want = FIRST_PREFIX;
        loop {
            let (bytes, total) = source.get_range(0, want).await?;
            source.len = total;
            source.prefix = MemorySource::new(bytes);
            match GgufHeader::read(&source) {
                Ok(header) => {
                    // The prefix may reach into the tensors: count only the header as done.
                    source.fetched.set(header.data_offset().min(total));
                    return Ok((source, header));
                }
                Err(GgufError::Truncated { needed_end, .. })
                    if needed_end <= total && source.prefix.len() == want.min(total) =>
                {
                    want = needed_end.max(want * 2).min(total);
                }
                Err(e) => return Err(HttpSourceError::Gguf(e)),
            }
        }
    }

    /// Bytes of the file loaded so far: the header, and the tensors fetched since.
    pub fn fetched(&self) -> u64 {
        self.fetched.get()
    }

    /// `len` bytes from `offset` (fewer at the end of the file), and the file's total length.
    async fn get_range(&self, offset: u64, len: u64) -> Result<(Vec<u8>, u64), HttpSourceError> {
        let fail = |m: String| HttpSourceError::Fetch(format!("{}: {m}", self.url));
        let last = offset + len.max(1) - 1;
        let response = Request::get(&self.url)
            .header("range", &format!("bytes={offset}-{last}"))
            .abort_signal(self.signal.as_ref())
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        let status = response.status();
        let total = match status {
            206 => response
                .headers()
                .get("content-range")
                .and_then(|v: String| v.rsplit('/').next()?.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    fail(
                        "a 206 answer without a readable Content-Range (CORS must expose it)"
                            .into(),
                    )
                })?,
            200 => {
                return Err(fail(
                    "the server ignores Range requests; the model cannot be streamed".into(),
                ));
            }
            416 => {
                return Err(HttpSourceError::Gguf(GgufError::Truncated {
                    what: "file".into(),
                    needed_end: offset + len,
                    file_len: 0,
                }));
            }
            s => return Err(fail(format!("HTTP {s}"))),
        };
        let bytes = response.binary().await.map_err(|e| fail(e.to_string()))?;
        self.fetched.set(self.fetched.get() + bytes.len() as u64);
        Ok((bytes, total))
    }
}

impl ByteSource for HttpSource {
    fn len(&self) -> u64 {
        self.len
    }

    /// Reads within the fetched header (beyond it: `Truncated`); tensors are read with
    /// [`ByteSource::fetch`].
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), GgufError> {
        self.prefix.read_exact_at(offset, buf)
    }

    async fn fetch(&self, offset: u64, len: u64) -> Result<Vec<u8>, GgufError> {
        let source_error = |reason: String| GgufError::Source {
            offset,
            end: offset + len,
            reason,
        };
        match self.get_range(offset, len).await {
            Ok((bytes, _)) if bytes.len() as u64 == len => Ok(bytes),
            Ok((bytes, _)) => Err(source_error(format!(
                "asked for {len} bytes, the server sent {}",
                bytes.len()
            ))),
            Err(HttpSourceError::Fetch(m)) => Err(source_error(m)),
            Err(HttpSourceError::Gguf(e)) => Err(e),
        }
    }
}
