//! An incremental decoder of `application/vnd.amazon.eventstream` frames (Bedrock's response
//! framing, providers.md §6.3), fed network chunks of any size.
//!
//! A frame is `total_len u32 | headers_len u32 | prelude_crc u32 | headers | payload | message_crc u32`,
//! big-endian, CRC-32/IEEE. Whole frames are decoded straight from the chunk; only the bytes of a
//! frame split across chunks are buffered, and only after its prelude has been checked, so a
//! corrupt length can never make us buffer gigabytes.

use std::fmt;

/// Prelude (two lengths and their CRC).
const PRELUDE_LEN: usize = 12;
/// Prelude plus the trailing message CRC: the smallest possible frame.
const MIN_FRAME_LEN: usize = PRELUDE_LEN + 4;
/// Bedrock's frames are a few KiB; the AWS SDKs refuse anything over 16 MiB.
pub const MAX_FRAME_LEN: usize = 16 << 20;

/// A typed header value; the wire type byte is noted on each variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValue {
    /// Types 0 (true) and 1 (false), which carry no value bytes.
    Bool(bool),
    /// Type 2.
    Byte(i8),
    /// Type 3.
    Int16(i16),
    /// Type 4.
    Int32(i32),
    /// Type 5.
    Int64(i64),
    /// Type 6: u16 length, then the bytes.
    Bytes(Vec<u8>),
    /// Type 7: u16 length, then UTF-8.
    String(String),
    /// Type 8: milliseconds since the Unix epoch.
    Timestamp(i64),
    /// Type 9: 16 bytes, big-endian.
    Uuid(u128),
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// In wire order (names may repeat; lookups take the first).
    pub headers: Vec<(String, HeaderValue)>,
    pub payload: Vec<u8>,
}

impl Message {
    /// The first header called `name`, if it is a string.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).and_then(|(_, v)| match v {
            HeaderValue::String(s) => Some(s.as_str()),
            _ => None,
        })
    }

    /// The first header called `name`, of any type.
    pub fn header(&self, name: &str) -> Option<&HeaderValue> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

/// Why the bytes are not an event stream. Every variant says where and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    PreludeCrc {
        expected: u32,
        actual: u32,
    },
    MessageCrc {
        expected: u32,
        actual: u32,
    },
    TooShort {
        total_len: u32,
    },
    TooLong {
        total_len: u32,
    },
    HeadersTooLong {
        headers_len: u32,
        total_len: u32,
    },
    Header(String),
    /// The body ended with `have` bytes of a `need`-byte frame (`need` is unknown below 4 bytes).
    Truncated {
        have: usize,
        need: Option<u32>,
    },
    /// `feed` after an error: the position in the stream is lost.
    Failed,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::PreludeCrc { expected, actual } => {
                write!(f, "event-stream prelude CRC mismatch: computed {expected:#010x}, the frame says {actual:#010x}")
            }
            DecodeError::MessageCrc { expected, actual } => {
                write!(f, "event-stream message CRC mismatch: computed {expected:#010x}, the frame says {actual:#010x}")
            }
            DecodeError::TooShort { total_len } => {
                write!(f, "event-stream frame length {total_len} is below the minimum of {MIN_FRAME_LEN} bytes")
            }
            DecodeError::TooLong { total_len } => {
                write!(f, "event-stream frame length {total_len} exceeds the limit of {MAX_FRAME_LEN} bytes")
            }
            DecodeError::HeadersTooLong { headers_len, total_len } => {
                write!(f, "event-stream headers length {headers_len} does not fit in a frame of {total_len} bytes")
            }
            DecodeError::Header(why) => write!(f, "bad event-stream header: {why}"),
            DecodeError::Truncated { have, need: Some(need) } => {
                write!(f, "the event stream ended inside a frame ({have} of {need} bytes)")
            }
            DecodeError::Truncated { have, need: None } => {
                write!(f, "the event stream ended inside a frame ({have} of at least {MIN_FRAME_LEN} bytes)")
            }
            DecodeError::Failed => f.write_str("the event stream already failed to decode"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Turns a byte stream cut anywhere into whole [`Message`]s.
#[derive(Debug, Default)]
pub struct Decoder {
    /// The start of a frame that has not fully arrived. Empty between frames.
    partial: Vec<u8>,
    /// The frame length, once `partial` holds a checked prelude.
    partial_len: Option<usize>,
    failed: bool,
}

impl Decoder {
    pub fn new() -> Self {
        Decoder::default()
    }

    /// Decode every frame `chunk` completes into `out`. On error the decoder is spent.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<Message>) -> Result<(), DecodeError> {
        if self.failed {
            return Err(DecodeError::Failed);
        }
        let r = self.feed_inner(chunk, out);
        if r.is_err() {
            self.failed = true;
            self.partial = Vec::new();
            self.partial_len = None;
        }
        r
    }

    fn feed_inner(&mut self, mut input: &[u8], out: &mut Vec<Message>) -> Result<(), DecodeError> {
        if !self.partial.is_empty() {
            let total = match self.partial_len {
                Some(t) => t,
                None => {
                    let take = (PRELUDE_LEN - self.partial.len()).min(input.len());
                    self.partial.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    if self.partial.len() < PRELUDE_LEN {
                        return Ok(());
                    }
                    let total = check_prelude(&self.partial)?;
                    self.partial.reserve_exact(total - self.partial.len());
                    self.partial_len = Some(total);
                    total
                }
            };
            let take = (total - self.partial.len()).min(input.len());
            self.partial.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.partial.len() < total {
                return Ok(());
            }
            out.push(decode_frame(&self.partial)?);
            self.partial.clear();
            self.partial_len = None;
        }
        while !input.is_empty() {
            if input.len() < PRELUDE_LEN {
                self.partial.extend_from_slice(input);
                return Ok(());
            }
            let total = check_prelude(input)?;
            if input.len() < total {
                self.partial.reserve_exact(total);
                self.partial.extend_from_slice(input);
                self.partial_len = Some(total);
                return Ok(());
            }
            out.push(decode_frame(&input[..total])?);
            input = &input[total..];
        }
        Ok(())
    }

    /// The body ended: an error if it ended inside a frame.
    pub fn finish(&mut self) -> Result<(), DecodeError> {
        if self.failed {
            return Err(DecodeError::Failed);
        }
        if self.partial.is_empty() {
            return Ok(());
        }
        let need = self.partial.get(..4).map(|b| be32(b, 0));
        Err(DecodeError::Truncated { have: self.partial.len(), need })
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Check the 12-byte prelude at the start of `b`; the frame's total length.
fn check_prelude(b: &[u8]) -> Result<usize, DecodeError> {
    let actual = be32(b, 8);
    let expected = crc32fast::hash(&b[..8]);
    // The CRC first: with a corrupt prelude the lengths mean nothing.
    if expected != actual {
        return Err(DecodeError::PreludeCrc { expected, actual });
    }
    let total_len = be32(b, 0);
    let headers_len = be32(b, 4);
    let total = total_len as usize;
    if total < MIN_FRAME_LEN {
        return Err(DecodeError::TooShort { total_len });
    }
    if total > MAX_FRAME_LEN {
        return Err(DecodeError::TooLong { total_len });
    }
    if headers_len as usize > total - MIN_FRAME_LEN {
        return Err(DecodeError::HeadersTooLong { headers_len, total_len });
    }
    Ok(total)
}

/// Decode one whole frame whose prelude [`check_prelude`] accepted.
fn decode_frame(frame: &[u8]) -> Result<Message, DecodeError> {
    let total = frame.len();
    let actual = be32(frame, total - 4);
    let expected = crc32fast::hash(&frame[..total - 4]);
    if expected != actual {
        return Err(DecodeError::MessageCrc { expected, actual });
    }
    let headers_end = PRELUDE_LEN + be32(frame, 4) as usize;
    let headers = decode_headers(&frame[PRELUDE_LEN..headers_end])?;
    Ok(Message { headers, payload: frame[headers_end..total - 4].to_vec() })
}

fn decode_headers(mut b: &[u8]) -> Result<Vec<(String, HeaderValue)>, DecodeError> {
    let mut headers = Vec::new();
    while let [name_len, rest @ ..] = b {
        b = rest;
        let name =
            take(&mut b, *name_len as usize).ok_or_else(|| overrun("a header name", *name_len as usize, b.len()))?;
        let name = std::str::from_utf8(name)
            .map_err(|_| DecodeError::Header(format!("header name {:?} is not UTF-8", String::from_utf8_lossy(name))))?
            .to_owned();
        let [kind, rest @ ..] = b else {
            return Err(DecodeError::Header(format!("header `{name}` has no value type")));
        };
        b = rest;
        let kind = *kind;
        let len = match kind {
            0 | 1 => 0,
            2 => 1,
            3 => 2,
            4 => 4,
            5 | 8 => 8,
            9 => 16,
            6 | 7 => {
                let n =
                    take(&mut b, 2).ok_or_else(|| overrun(&format!("the length of header `{name}`"), 2, b.len()))?;
                u16::from_be_bytes([n[0], n[1]]) as usize
            }
            other => return Err(DecodeError::Header(format!("header `{name}` has unknown value type {other}"))),
        };
        let v = take(&mut b, len).ok_or_else(|| overrun(&format!("the value of header `{name}`"), len, b.len()))?;
        let value = match kind {
            0 => HeaderValue::Bool(true),
            1 => HeaderValue::Bool(false),
            2 => HeaderValue::Byte(i8::from_be_bytes(arr(v))),
            3 => HeaderValue::Int16(i16::from_be_bytes(arr(v))),
            4 => HeaderValue::Int32(i32::from_be_bytes(arr(v))),
            5 => HeaderValue::Int64(i64::from_be_bytes(arr(v))),
            6 => HeaderValue::Bytes(v.to_vec()),
            7 => match std::str::from_utf8(v) {
                Ok(s) => HeaderValue::String(s.to_owned()),
                Err(_) => return Err(DecodeError::Header(format!("the string value of `{name}` is not UTF-8"))),
            },
            8 => HeaderValue::Timestamp(i64::from_be_bytes(arr(v))),
            _ => HeaderValue::Uuid(u128::from_be_bytes(arr(v))),
        };
        headers.push((name, value));
    }
    Ok(headers)
}

/// Split `len` bytes off the front of `b`.
fn take<'a>(b: &mut &'a [u8], len: usize) -> Option<&'a [u8]> {
    let (v, rest) = b.split_at_checked(len)?;
    *b = rest;
    Some(v)
}

fn overrun(what: &str, len: usize, left: usize) -> DecodeError {
    DecodeError::Header(format!("{what} needs {len} bytes but only {left} remain in the headers"))
}

/// The caller has checked the length.
fn arr<const N: usize>(v: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(v);
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_types::event_stream as smithy;

    /// providers.md §6.3: a real Bedrock `chunk` frame.
    const CHUNK_HEX: &str = "000000870000004b87ea2bf30b3a6576656e742d747970650700056368756e6b0d3a636f6e74656e742d747970650700106170706c69636174696f6e2f6a736f6e0d3a6d6573736167652d747970650700056576656e747b226279746573223a2265794a306558426c496a6f696257567a6332466e5a56397a64473977496e303d227dba48ab22";

    fn chunk_frame() -> Vec<u8> {
        hex::decode(CHUNK_HEX).expect("hex")
    }

    fn s(v: &str) -> HeaderValue {
        HeaderValue::String(v.to_owned())
    }

    fn decode_all(chunks: &[&[u8]]) -> Result<Vec<Message>, DecodeError> {
        let mut d = Decoder::new();
        let mut out = Vec::new();
        for c in chunks {
            d.feed(c, &mut out)?;
        }
        d.finish()?;
        Ok(out)
    }

    #[test]
    fn the_reference_frame_decodes_at_every_split() {
        let frame = chunk_frame();
        assert_eq!(frame.len(), 135);
        let want = Message {
            headers: vec![
                (":event-type".into(), s("chunk")),
                (":content-type".into(), s("application/json")),
                (":message-type".into(), s("event")),
            ],
            payload: br#"{"bytes":"eyJ0eXBlIjoibWVzc2FnZV9zdG9wIn0="}"#.to_vec(),
        };
        for i in 0..=frame.len() {
            let (a, b) = frame.split_at(i);
            assert_eq!(decode_all(&[a, b]), Ok(vec![want.clone()]), "split at {i}");
        }
        // Byte by byte, and three frames in one chunk.
        let bytes: Vec<&[u8]> = frame.chunks(1).collect();
        assert_eq!(decode_all(&bytes), Ok(vec![want.clone()]));
        let three = [frame.clone(), frame.clone(), frame.clone()].concat();
        assert_eq!(decode_all(&[&three]), Ok(vec![want.clone(), want.clone(), want.clone()]));
        // Two frames split inside each other's preludes.
        for i in 0..three.len() {
            for j in [i, i + 1, i + 7, i + 135].map(|j| j.min(three.len())) {
                let got = decode_all(&[&three[..i], &three[i..j], &three[j..]]).expect("decodes");
                assert_eq!(got.len(), 3, "splits {i}/{j}");
            }
        }
        assert_eq!(want.header_str(":event-type"), Some("chunk"));
        assert_eq!(want.header_str(":exception-type"), None);
    }

    #[test]
    fn corrupt_crcs_are_named_with_both_values() {
        let mut f = chunk_frame();
        f[8] ^= 0xff;
        let e = decode_all(&[&f]).expect_err("prelude crc");
        assert_eq!(e, DecodeError::PreludeCrc { expected: 0x87ea2bf3, actual: 0x78ea2bf3 });
        assert_eq!(e.to_string(), "event-stream prelude CRC mismatch: computed 0x87ea2bf3, the frame says 0x78ea2bf3");

        let mut f = chunk_frame();
        let last = f.len() - 1;
        f[last] ^= 0x01;
        let e = decode_all(&[&f[..50], &f[50..]]).expect_err("message crc");
        assert_eq!(e, DecodeError::MessageCrc { expected: 0xba48ab22, actual: 0xba48ab23 });
        assert!(e.to_string().contains("message CRC mismatch: computed 0xba48ab22, the frame says 0xba48ab23"));

        // A flipped payload byte is caught by the message CRC too.
        let mut f = chunk_frame();
        f[100] ^= 0x20;
        assert!(matches!(decode_all(&[&f]), Err(DecodeError::MessageCrc { .. })));

        // The decoder is spent after an error.
        let mut d = Decoder::new();
        let mut out = Vec::new();
        assert!(d.feed(&f, &mut out).is_err());
        assert_eq!(d.feed(&chunk_frame(), &mut out), Err(DecodeError::Failed));
        assert!(out.is_empty());
    }

    fn prelude(total: u32, headers: u32) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&headers.to_be_bytes());
        p.extend_from_slice(&crc32fast::hash(&p).to_be_bytes());
        p
    }

    #[test]
    fn lengths_are_checked_before_anything_is_buffered() {
        let mut d = Decoder::new();
        let mut out = Vec::new();
        let e = d.feed(&prelude(u32::MAX, 0), &mut out).expect_err("too long");
        assert_eq!(e.to_string(), "event-stream frame length 4294967295 exceeds the limit of 16777216 bytes");
        assert_eq!(d.partial.capacity(), 0);

        let e = decode_all(&[&prelude(15, 0)]).expect_err("too short");
        assert_eq!(e, DecodeError::TooShort { total_len: 15 });
        let e = decode_all(&[&prelude(20, 5)]).expect_err("headers");
        assert_eq!(e.to_string(), "event-stream headers length 5 does not fit in a frame of 20 bytes");

        // The smallest frame: no headers, no payload.
        let mut f = prelude(16, 0);
        f.extend_from_slice(&crc32fast::hash(&f).to_be_bytes());
        assert_eq!(decode_all(&[&f]), Ok(vec![Message::default()]));
    }

    /// A frame with these raw header bytes, valid CRCs.
    fn with_headers(h: &[u8]) -> Vec<u8> {
        let mut f = prelude(16 + h.len() as u32, h.len() as u32);
        f.extend_from_slice(h);
        f.extend_from_slice(&crc32fast::hash(&f).to_be_bytes());
        f
    }

    #[test]
    fn header_values_must_stay_inside_the_headers() {
        let cases: [(&[u8], &str); 6] = [
            (b"\x05ab", "a header name needs 5 bytes but only 2 remain in the headers"),
            (b"\x01a", "header `a` has no value type"),
            (b"\x01a\x07\x00\x09xyz", "the value of header `a` needs 9 bytes but only 3 remain"),
            (b"\x01a\x05\x00\x00", "the value of header `a` needs 8 bytes but only 2 remain"),
            (b"\x01a\x0a", "header `a` has unknown value type 10"),
            (b"\x01a\x06\x00", "the length of header `a` needs 2 bytes but only 1 remain"),
        ];
        for (h, want) in cases {
            let e = decode_all(&[&with_headers(h)]).expect_err(want);
            assert!(e.to_string().contains(want), "{e}");
        }
        let e = decode_all(&[&with_headers(b"\x01a\x07\x00\x02\xff\xfe")]).expect_err("utf8");
        assert_eq!(e.to_string(), "bad event-stream header: the string value of `a` is not UTF-8");
    }

    #[test]
    fn a_body_ending_inside_a_frame_is_an_error() {
        let f = chunk_frame();
        for cut in [1, 3, 4, 11, 12, 60, 134] {
            let mut d = Decoder::new();
            let mut out = Vec::new();
            d.feed(&f[..cut], &mut out).expect("no error yet");
            assert!(out.is_empty());
            let e = d.finish().expect_err("truncated");
            let want = if cut < 4 {
                format!("the event stream ended inside a frame ({cut} of at least 16 bytes)")
            } else {
                format!("the event stream ended inside a frame ({cut} of 135 bytes)")
            };
            assert_eq!(e.to_string(), want);
        }
        // A whole frame followed by a partial one.
        let mut d = Decoder::new();
        let mut out = Vec::new();
        d.feed(&[f.clone(), f[..20].to_vec()].concat(), &mut out).expect("first frame");
        assert_eq!(out.len(), 1);
        assert_eq!(d.finish(), Err(DecodeError::Truncated { have: 20, need: Some(135) }));
    }

    fn smithy_encode(m: &smithy::Message) -> Vec<u8> {
        let mut buf = Vec::new();
        aws_smithy_eventstream::frame::write_message_to(m, &mut buf).expect("encode");
        buf
    }

    #[test]
    fn every_header_type_matches_the_aws_implementation() {
        let long = "x".repeat(32_767);
        let m = smithy::Message::new_from_parts(
            vec![
                smithy::Header::new("t", smithy::HeaderValue::Bool(true)),
                smithy::Header::new("f", smithy::HeaderValue::Bool(false)),
                smithy::Header::new("i8", smithy::HeaderValue::Byte(-7)),
                smithy::Header::new("i16", smithy::HeaderValue::Int16(-30_000)),
                smithy::Header::new("i32", smithy::HeaderValue::Int32(i32::MIN)),
                smithy::Header::new("i64", smithy::HeaderValue::Int64(i64::MAX - 1)),
                smithy::Header::new(
                    "bytes",
                    smithy::HeaderValue::ByteArray(bytes::Bytes::from_static(b"\x00\xff\x10")),
                ),
                smithy::Header::new("str", smithy::HeaderValue::String("héllo ✓".into())),
                smithy::Header::new(
                    "ts",
                    smithy::HeaderValue::Timestamp(aws_smithy_types::DateTime::from_millis(1_735_689_600_123)),
                ),
                smithy::Header::new("uuid", smithy::HeaderValue::Uuid(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210)),
                smithy::Header::new("long", smithy::HeaderValue::String(long.clone().into())),
                smithy::Header::new("empty", smithy::HeaderValue::ByteArray(bytes::Bytes::new())),
            ],
            bytes::Bytes::from_static(b"payload \x00\x01"),
        );
        let frame = smithy_encode(&m);
        let want = Message {
            headers: vec![
                ("t".into(), HeaderValue::Bool(true)),
                ("f".into(), HeaderValue::Bool(false)),
                ("i8".into(), HeaderValue::Byte(-7)),
                ("i16".into(), HeaderValue::Int16(-30_000)),
                ("i32".into(), HeaderValue::Int32(i32::MIN)),
                ("i64".into(), HeaderValue::Int64(i64::MAX - 1)),
                ("bytes".into(), HeaderValue::Bytes(vec![0, 0xff, 0x10])),
                ("str".into(), s("héllo ✓")),
                ("ts".into(), HeaderValue::Timestamp(1_735_689_600_123)),
                ("uuid".into(), HeaderValue::Uuid(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210)),
                ("long".into(), s(&long)),
                ("empty".into(), HeaderValue::Bytes(Vec::new())),
            ],
            payload: b"payload \x00\x01".to_vec(),
        };
        for split in [0, 5, 12, 13, 40, frame.len() / 2, frame.len() - 3] {
            assert_eq!(decode_all(&[&frame[..split], &frame[split..]]), Ok(vec![want.clone()]), "split {split}");
        }
        assert_eq!(want.header(":x"), None);
        assert_eq!(want.header("i8"), Some(&HeaderValue::Byte(-7)));
        assert_eq!(want.header_str("i8"), None);
    }

    #[test]
    fn the_aws_decoder_agrees_on_random_frames() {
        use proptest::prelude::*;
        let strategy = (
            proptest::collection::vec(("[a-z:-]{1,20}", "\\PC{0,40}"), 0..6),
            proptest::collection::vec(any::<u8>(), 0..300),
            proptest::collection::vec(1usize..64, 1..8),
        );
        proptest!(|((headers, payload, sizes) in strategy)| {
            let m = smithy::Message::new_from_parts(
                headers.iter().map(|(n, v)| smithy::Header::new(n.clone(), smithy::HeaderValue::String(v.clone().into()))).collect(),
                bytes::Bytes::from(payload.clone()),
            );
            let frame = [smithy_encode(&m), smithy_encode(&m)].concat();
            let mut chunks = Vec::new();
            let mut rest = &frame[..];
            for n in sizes.iter().cycle() {
                if rest.is_empty() { break; }
                let (a, b) = rest.split_at((*n).min(rest.len()));
                chunks.push(a);
                rest = b;
            }
            let got = decode_all(&chunks).expect("decodes");
            let want = Message {
                headers: headers.iter().map(|(n, v)| (n.clone(), HeaderValue::String(v.clone()))).collect(),
                payload,
            };
            prop_assert_eq!(got, vec![want.clone(), want]);
        });
    }
}
