//! Incremental detokenization: text deltas as ids arrive, never a broken UTF-8 sequence.
//!
//! Byte-level BPE splits a multi-byte character over several tokens; decoding a prefix that
//! ends mid-character yields U+FFFD. The decoder holds such ids back until the character is
//! whole (the method of HF `tokenizers`' DecodeStream and text-generation-inference).

use super::{Tokenizer, TokenizerError};

/// Turns a stream of ids into text deltas.
#[derive(Debug, Default, Clone)]
pub struct StreamDecoder {
    ids: Vec<u32>,
    /// Start of the ids whose text has been emitted but that give context for the next.
    prefix_offset: usize,
    /// Start of the ids whose text has not been emitted yet.
    read_offset: usize,
    skip_special: bool,
}

impl StreamDecoder {
    /// A decoder; `skip_special` leaves special tokens out of the text.
    pub fn new(skip_special: bool) -> Self {
        Self {
            skip_special,
            ..Self::default()
        }
    }

    /// Adds one id; returns the new text, if the ids so far end on a whole character.
    pub fn step(
        &mut self,
        tokenizer: &Tokenizer,
        id: u32,
    ) -> Result<Option<String>, TokenizerError> {
        self.ids.push(id);
        let prefix = tokenizer.decode(
            &self.ids[self.prefix_offset..self.read_offset],
            self.skip_special,
        )?;
        let text = tokenizer.decode(&self.ids[self.prefix_offset..], self.skip_special)?;
        if text.len() > prefix.len()
            && !text.ends_with('\u{FFFD}')
            && text.is_char_boundary(prefix.len())
        {
            let delta = text[prefix.len()..].to_string();
            self.prefix_offset = self.read_offset;
            self.read_offset = self.ids.len();
            Ok(Some(delta))
        } else {
            Ok(None)
        }
    }

    /// At the end of the stream: whatever is held back (U+FFFD for a truncated character).
    pub fn finish(&mut self, tokenizer: &Tokenizer) -> Result<Option<String>, TokenizerError> {
        let prefix = tokenizer.decode(
            &self.ids[self.prefix_offset..self.read_offset],
            self.skip_special,
        )?;
        let text = tokenizer.decode(&self.ids[self.prefix_offset..], self.skip_special)?;
        self.prefix_offset = self.ids.len();
        self.read_offset = self.ids.len();
        Ok(text
            .get(prefix.len()..)
            .filter(|d| !d.is_empty())
            .map(str::to_string))
    }
}
