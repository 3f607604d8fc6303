//! Server-sent events, parsed from a body that arrives in arbitrary pieces (the WHATWG
//! `text/event-stream` rules): lines end in LF, CRLF or CR, even when a CRLF is split between
//! two pieces; a piece may end inside a line or inside a UTF-8 sequence (lines are decoded only
//! when complete); `:` lines are comments (keep-alives); several `data:` lines make one event,
//! joined by LF; an empty line dispatches the event. The browser's `EventSource` cannot be used:
//! it only sends GET, and OpenAI streaming is a POST.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field (`"message"` when none was given).
    pub event: String,
    /// The `data:` lines, joined by LF.
    pub data: String,
}

/// An incremental parser: [`SseParser::push`] each piece of the body as it arrives, then
/// [`SseParser::finish`] at its end.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of a line not yet ended.
    line: Vec<u8>,
    /// The last piece ended in CR: a LF starting the next piece belongs to it.
    after_cr: bool,
    /// Whether the first line (and a BOM at its start) has been seen.
    started: bool,
    event: String,
    data: String,
    has_data: bool,
}

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses the next piece of the body; returns the events it completed.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        for &b in bytes {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' => self.end_line(&mut events),
                b'\r' => {
                    self.end_line(&mut events);
                    self.after_cr = true;
                }
                _ => self.line.push(b),
            }
        }
        events
    }

    /// Ends the stream. An event whose closing empty line never came is still dispatched (a
    /// server that closes right after its last `data:` line loses nothing), a line cut short
    /// included: if it is half a JSON object, the layer above reports it as malformed.
    pub fn finish(&mut self) -> Vec<SseEvent> {
        let mut events = Vec::new();
        if !self.line.is_empty() {
            self.end_line(&mut events);
        }
        self.end_line(&mut events);
        events
    }

    fn end_line(&mut self, events: &mut Vec<SseEvent>) {
        let raw = std::mem::take(&mut self.line);
        let mut line = String::from_utf8_lossy(&raw).into_owned();
        if !self.started {
            self.started = true;
            if let Some(rest) = line.strip_prefix('\u{feff}') {
                line = rest.to_string();
            }
        }
        if line.is_empty() {
            if self.has_data {
                let mut data = std::mem::take(&mut self.data);
                data.pop(); // the LF after the last data line
                let event = match std::mem::take(&mut self.event) {
                    e if e.is_empty() => "message".to_string(),
                    e => e,
                };
                events.push(SseEvent { event, data });
            }
            self.event.clear();
            self.has_data = false;
            return;
        }
        if line.starts_with(':') {
            return; // a comment: keep-alive
        }
        let (field, value) = match line.find(':') {
            Some(i) => {
                let value = &line[i + 1..];
                (&line[..i], value.strip_prefix(' ').unwrap_or(value))
            }
            None => (line.as_str(), ""),
        };
        match field {
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
                self.has_data = true;
            }
            "event" => self.event = value.to_string(),
            _ => {} // id, retry and unknown fields do not matter here
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_pieces(body: &[u8], piece: usize) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        let mut events = Vec::new();
        for chunk in body.chunks(piece.max(1)) {
            events.extend(parser.push(chunk));
        }
        events.extend(parser.finish());
        events
    }

    fn data(events: &[SseEvent]) -> Vec<&str> {
        events.iter().map(|e| e.data.as_str()).collect()
    }

    #[test]
    fn every_split_of_the_body_gives_the_same_events() {
        let body = "\u{feff}: keep-alive\r\n\r\ndata: {\"a\":\"h\u{e9}llo \u{1f999}\"}\r\n\r\n\
                    event: note\rdata: line one\rdata:line two\r\r\
                    data: [DONE]\n\n"
            .as_bytes();
        let whole = parse_in_pieces(body, body.len());
        assert_eq!(
            data(&whole),
            [
                "{\"a\":\"h\u{e9}llo \u{1f999}\"}",
                "line one\nline two",
                "[DONE]"
            ]
        );
        assert_eq!(whole[1].event, "note");
        assert_eq!(whole[0].event, "message");
        for piece in 1..body.len() {
            assert_eq!(
                parse_in_pieces(body, piece),
                whole,
                "pieces of {piece} bytes"
            );
        }
    }

    #[test]
    fn comments_and_empty_events_dispatch_nothing() {
        let events = parse_in_pieces(b":ping\n\n: another\n\nevent: x\n\nid: 3\n\n", 3);
        assert!(events.is_empty(), "{events:?}");
    }

    #[test]
    fn an_unterminated_last_event_is_still_dispatched() {
        assert_eq!(
            data(&parse_in_pieces(b"data: {\"x\":1}\n", 4)),
            ["{\"x\":1}"]
        );
        assert_eq!(data(&parse_in_pieces(b"data: {\"x\":", 4)), ["{\"x\":"]);
    }

    #[test]
    fn a_field_without_a_colon_or_space_is_read_as_the_spec_says() {
        assert_eq!(data(&parse_in_pieces(b"data\n\ndata:x\n\n", 1)), ["", "x"]);
    }
}
