//! Stop strings over streamed text: text that might be the start of a stop string is held back
//! until it is clearly not one, so a stop string never reaches the caller, even in part.

/// Watches streamed text for any of a set of stop strings.
#[derive(Debug, Clone, Default)]
pub struct StopStrings {
    stops: Vec<String>,
    held: String,
}

/// What [`StopStrings::push`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopScan {
    /// No stop string yet: this text is safe to emit (possibly empty).
    Continue(String),
    /// A stop string ended here: emit this text (the part before it) and stop.
    Stop(String),
}

impl StopStrings {
    /// A matcher for `stops` (empty strings are ignored).
    pub fn new(stops: &[String]) -> Self {
        Self {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            held: String::new(),
        }
    }

    /// Adds streamed text.
    pub fn push(&mut self, text: &str) -> StopScan {
        self.held.push_str(text);
        let earliest = self
            .stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()))
            .min();
        if let Some(at) = earliest {
            let before = self.held[..at].to_string();
            self.held.clear();
            return StopScan::Stop(before);
        }
        // Hold back the longest tail that is a proper prefix of some stop string.
        let keep = self
            .stops
            .iter()
            .flat_map(|s| {
                let held = &self.held;
                (1..s.len().min(held.len() + 1))
                    .filter(move |&n| s.is_char_boundary(n) && held.ends_with(&s[..n]))
            })
            .max()
            .unwrap_or(0);
        let emit = self.held[..self.held.len() - keep].to_string();
        self.held.drain(..self.held.len() - keep);
        StopScan::Continue(emit)
    }

    /// At the end of the stream: the text still held back.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stops(s: &[&str]) -> StopStrings {
        StopStrings::new(&s.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn a_stop_split_over_pushes_is_found_and_never_emitted() {
        let mut m = stops(&["END"]);
        assert_eq!(m.push("hello E"), StopScan::Continue("hello ".into()));
        assert_eq!(m.push("N"), StopScan::Continue(String::new()));
        assert_eq!(m.push("Dless"), StopScan::Stop("".into()));
    }

    #[test]
    fn a_false_start_is_released() {
        let mut m = stops(&["END"]);
        assert_eq!(m.push("EN"), StopScan::Continue(String::new()));
        assert_eq!(m.push("d"), StopScan::Continue("ENd".into()));
        assert_eq!(m.push("x EN"), StopScan::Continue("x ".into()));
        assert_eq!(m.finish(), "EN");
    }

    #[test]
    fn the_earliest_of_several_stops_wins() {
        let mut m = stops(&["world", "lo w"]);
        assert_eq!(m.push("hello world"), StopScan::Stop("hel".into()));
    }

    #[test]
    fn no_stops_passes_everything() {
        let mut m = stops(&[]);
        assert_eq!(m.push("abc"), StopScan::Continue("abc".into()));
    }

    #[test]
    fn multibyte_text_is_held_on_char_boundaries() {
        let mut m = stops(&["éx"]);
        assert_eq!(m.push("aé"), StopScan::Continue("a".into()));
        assert_eq!(m.push("y"), StopScan::Continue("éy".into()));
    }
}
