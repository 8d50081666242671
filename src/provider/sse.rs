//! An incremental Server-Sent Events parser over raw byte chunks (WHATWG grammar).
//!
//! It never reconnects or re-sends anything: it only turns bytes into events. Chunks may split
//! lines, `\r\n` pairs and UTF-8 sequences anywhere. Beyond the standard, two kinds of line that
//! vendors send on failure are surfaced instead of dropped: an `error:` field (older llama.cpp)
//! and a bare JSON line (Gemini after a mid-stream failure), as events named `error` and `json`.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, empty when absent.
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// A line longer than this is refused as malformed rather than buffered without end.
const MAX_LINE: usize = 16 << 20;

#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    data: String,
    has_data: bool,
    event: String,
    /// The previous chunk ended in `\r`; a leading `\n` in the next belongs to it.
    skip_lf: bool,
    /// A bare JSON value spread over several lines (Gemini's mid-stream error), and its depth.
    json: Option<(String, i32)>,
    started: bool,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed one chunk; complete events are appended to `out`.
    pub fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), String> {
        if !self.started && !chunk.is_empty() {
            // A BOM may only open the stream; it may itself arrive split, which we accept
            // by checking the joined line below as well.
            self.started = true;
        }
        while !chunk.is_empty() {
            if self.skip_lf {
                self.skip_lf = false;
                if chunk[0] == b'\n' {
                    chunk = &chunk[1..];
                    continue;
                }
            }
            match memchr::memchr2(b'\n', b'\r', chunk) {
                Some(i) => {
                    let line_end = chunk[i];
                    if self.line.is_empty() {
                        self.line_done(&chunk[..i], out)?;
                    } else {
                        self.line.extend_from_slice(&chunk[..i]);
                        let line = std::mem::take(&mut self.line);
                        self.line_done(&line, out)?;
                        self.line = line;
                        self.line.clear();
                    }
                    chunk = &chunk[i + 1..];
                    if line_end == b'\r' {
                        self.skip_lf = true;
                    }
                }
                None => {
                    if self.line.len() + chunk.len() > MAX_LINE {
                        return Err(format!("an event-stream line is longer than {} MiB", MAX_LINE >> 20));
                    }
                    self.line.extend_from_slice(chunk);
                    break;
                }
            }
        }
        Ok(())
    }

    /// The stream ended. Per the standard an unterminated event is discarded; a last line
    /// without its newline is still read, because some servers omit it after `data: [DONE]`.
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) -> Result<(), String> {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, out)?;
        }
        if self.has_data && self.data == "[DONE]" {
            self.dispatch(out);
        }
        // An unbalanced JSON value at the end is still shown to the vendor parser, which will
        // call it malformed rather than lose it.
        if let Some((json, _)) = self.json.take() {
            out.push(SseEvent { event: "json".into(), data: json });
        }
        Ok(())
    }

    fn line_done(&mut self, mut line: &[u8], out: &mut Vec<SseEvent>) -> Result<(), String> {
        if let Some(rest) = line.strip_prefix(b"\xEF\xBB\xBF") {
            line = rest;
        }
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        let line = std::str::from_utf8(line).map_err(|_| "an event-stream line is not valid UTF-8".to_owned())?;
        if let Some((json, depth)) = &mut self.json {
            json.push('\n');
            json.push_str(line);
            *depth += json_depth(line);
            if json.len() > MAX_LINE {
                return Err(format!("a JSON value in the event stream is longer than {} MiB", MAX_LINE >> 20));
            }
            if *depth <= 0 {
                let (data, _) = self.json.take().unwrap_or_default();
                out.push(SseEvent { event: "json".into(), data });
            }
            return Ok(());
        }
        if line.starts_with(':') {
            return Ok(()); // comment: a keep-alive
        }
        if line.starts_with('{') || line.starts_with('[') {
            // Gemini writes its mid-stream error as pretty-printed JSON, one line per field.
            let depth = json_depth(line);
            if depth > 0 {
                self.json = Some((line.to_owned(), depth));
            } else {
                out.push(SseEvent { event: "json".into(), data: line.to_owned() });
            }
            return Ok(());
        }
        let (field, value) = match line.find(':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.data.len() + value.len() > MAX_LINE {
                    return Err(format!("an event is longer than {} MiB", MAX_LINE >> 20));
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => {
                self.event.clear();
                self.event.push_str(value);
            }
            "error" => out.push(SseEvent { event: "error".into(), data: value.to_owned() }),
            _ => {} // id, retry and unknown fields
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        if self.has_data {
            out.push(SseEvent { event: std::mem::take(&mut self.event), data: std::mem::take(&mut self.data) });
        }
        self.has_data = false;
        self.data.clear();
        self.event.clear();
    }
}

/// How many more `{`/`[` than `}`/`]` a line opens, outside JSON strings.
fn json_depth(line: &str) -> i32 {
    let (mut depth, mut in_string, mut escaped) = (0, false, false);
    for b in line.bytes() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth -= 1,
            _ => {}
        }
    }
    depth
}

/// Newline-delimited JSON framing (Ollama): one object per line, blank lines skipped.
#[derive(Debug, Default)]
pub struct LineParser {
    line: Vec<u8>,
}

impl LineParser {
    pub fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<String>) -> Result<(), String> {
        while let Some(i) = memchr::memchr(b'\n', chunk) {
            self.line.extend_from_slice(&chunk[..i]);
            chunk = &chunk[i + 1..];
            self.emit(out)?;
        }
        if self.line.len() + chunk.len() > MAX_LINE {
            return Err(format!("a JSON line is longer than {} MiB", MAX_LINE >> 20));
        }
        self.line.extend_from_slice(chunk);
        Ok(())
    }

    /// A final line without its newline still counts.
    pub fn finish(&mut self, out: &mut Vec<String>) -> Result<(), String> {
        self.emit(out)
    }

    fn emit(&mut self, out: &mut Vec<String>) -> Result<(), String> {
        let line = std::mem::take(&mut self.line);
        let text = std::str::from_utf8(&line).map_err(|_| "a JSON line is not valid UTF-8".to_owned())?;
        let text = text.trim();
        if !text.is_empty() {
            out.push(text.to_owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_pieces(input: &[u8], size: usize) -> Vec<SseEvent> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for piece in input.chunks(size) {
            p.feed(piece, &mut out).expect("feed");
        }
        p.finish(&mut out).expect("finish");
        out
    }

    fn ev(event: &str, data: &str) -> SseEvent {
        SseEvent { event: event.into(), data: data.into() }
    }

    #[test]
    fn any_chunking_gives_the_same_events() {
        let input = "\u{feff}: keep-alive\r\n\r\nevent: message_start\r\ndata: {\"a\":\r\ndata:  \"é\"}\r\n\r\n\
                     data: one\rdata: two\r\rid: 3\nretry: 10\nfoo: bar\ndata\n\ndata: [DONE]\n\n";
        let want = vec![ev("message_start", "{\"a\":\n \"é\"}"), ev("", "one\ntwo"), ev("", ""), ev("", "[DONE]")];
        for size in 1..=input.len() {
            assert_eq!(parse_in_pieces(input.as_bytes(), size), want, "chunk size {size}");
        }
    }

    #[test]
    fn unterminated_events_are_dropped_but_a_bare_done_counts() {
        assert_eq!(parse_in_pieces(b"data: partial\n", 4), vec![]);
        assert_eq!(parse_in_pieces(b"data: [DONE]", 4), vec![ev("", "[DONE]")]);
    }

    #[test]
    fn failure_lines_are_surfaced() {
        let got = parse_in_pieces(b"error: {\"code\":500}\n{\"error\":{\"code\":503}}\n\n", 3);
        assert_eq!(got, vec![ev("error", "{\"code\":500}"), ev("json", "{\"error\":{\"code\":503}}")]);
    }

    #[test]
    fn a_done_whose_blank_line_never_came_still_counts() {
        assert_eq!(parse_in_pieces(b"data: x\n\ndata: [DONE]\n", 3), vec![ev("", "x"), ev("", "[DONE]")]);
    }

    #[test]
    fn pretty_printed_json_lines_are_gathered() {
        let input = "data: {\"a\":1}\r\n\r\n{\r\n  \"error\": {\r\n    \"code\": 503,\r\n    \"message\": \"}{ busy\"\r\n  }\r\n}\r\n";
        let want = vec![
            ev("", "{\"a\":1}"),
            ev("json", "{\n  \"error\": {\n    \"code\": 503,\n    \"message\": \"}{ busy\"\n  }\n}"),
        ];
        for size in 1..=input.len() {
            assert_eq!(parse_in_pieces(input.as_bytes(), size), want, "chunk size {size}");
        }
    }

    #[test]
    fn an_endless_event_is_refused() {
        let mut p = SseParser::new();
        let line = format!("data: {}\n", "x".repeat(1 << 20));
        let mut out = Vec::new();
        let r = (0..20).try_for_each(|_| p.feed(line.as_bytes(), &mut out));
        assert!(r.is_err_and(|e| e.contains("longer than")));
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let mut p = SseParser::new();
        assert!(p.feed(b"data: \xff\n", &mut Vec::new()).is_err());
    }

    #[test]
    fn ndjson_lines() {
        let mut p = LineParser::default();
        let mut out = Vec::new();
        for piece in b"{\"a\":1}\n\n{\"b\":".chunks(3) {
            p.feed(piece, &mut out).expect("feed");
        }
        p.feed(b"2}", &mut out).expect("feed");
        p.finish(&mut out).expect("finish");
        assert_eq!(out, vec!["{\"a\":1}", "{\"b\":2}"]);
    }
}
