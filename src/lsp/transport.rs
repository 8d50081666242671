//! Input framing that survives bad input. tower-lsp-server ends its read loop on the first message
//! it cannot decode (invalid UTF-8, invalid JSON, a non-JSON-RPC object), which would kill the
//! server. So Quill reads stdin itself, checks each message, and forwards only well-formed ones.
//! A malformed message is replaced by a request to [`MALFORMED`] with id `null`, whose handler
//! answers with the right JSON-RPC error; every reply thus still goes through tower-lsp's writer.

use std::borrow::Cow;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader, DuplexStream};
use tower_lsp_server::jsonrpc::{Request, Response};

/// The internal method a malformed message is turned into.
pub const MALFORMED: &str = "quill/_malformed";

/// Parameters of a [`MALFORMED`] request.
#[derive(Debug, serde::Deserialize)]
pub struct MalformedParams {
    pub code: i64,
    pub message: String,
}

/// Messages over this size are refused (their bytes are skipped).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

const MAX_HEADER_LINE: u64 = 8 * 1024;

/// Spawn the filter; the returned stream yields only well-formed frames.
pub fn sanitized<R: AsyncRead + Unpin + Send + 'static>(input: R) -> DuplexStream {
    let (out, mut tx) = tokio::io::duplex(1 << 16);
    tokio::spawn(async move {
        let mut input = BufReader::with_capacity(1 << 16, input);
        loop {
            let body = match read_frame(&mut input).await {
                Ok(Some(Ok(body))) => body,
                Ok(Some(Err(problem))) => synthetic(-32700, &problem, Value::Null),
                Ok(None) => break,
                Err(e) => {
                    tracing::error!("reading stdin failed: {e}");
                    break;
                }
            };
            let body = vet(&body);
            let header = format!("Content-Length: {}\r\n\r\n", body.len());
            if tx.write_all(header.as_bytes()).await.is_err() || tx.write_all(&body).await.is_err() {
                break; // the server has stopped reading
            }
        }
        let _ = tx.shutdown().await;
    });
    out
}

/// Read one frame. `Ok(None)` at end of input; `Ok(Some(Err(_)))` for a frame that cannot be used
/// (bad header, too large), after skipping its bytes.
async fn read_frame<R: AsyncRead + Unpin>(
    input: &mut BufReader<R>,
) -> std::io::Result<Option<Result<Vec<u8>, String>>> {
    let mut length: Option<usize> = None;
    let mut bad_header = None;
    let mut saw_any = false;
    loop {
        let mut line = Vec::new();
        let n = (&mut *input).take(MAX_HEADER_LINE).read_until(b'\n', &mut line).await?;
        if n == 0 {
            return Ok(None);
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        if text.is_empty() {
            if saw_any {
                break;
            }
            continue; // stray blank line between messages
        }
        saw_any = true;
        match text.split_once(':') {
            Some((name, value)) if name.trim().eq_ignore_ascii_case("content-length") => {
                match value.trim().parse::<usize>() {
                    Ok(v) => length = Some(v),
                    Err(_) => bad_header = Some(format!("invalid Content-Length `{}`", value.trim())),
                }
            }
            Some(_) => {} // Content-Type and unknown headers are ignored
            None => bad_header = Some("header line without `:`".to_owned()),
        }
    }
    let Some(length) = length else {
        return Ok(Some(Err(bad_header.unwrap_or_else(|| "missing Content-Length".to_owned()))));
    };
    if length > MAX_MESSAGE_BYTES {
        let skipped = tokio::io::copy(&mut (&mut *input).take(length as u64), &mut tokio::io::sink()).await?;
        tracing::error!(length, skipped, "message over {MAX_MESSAGE_BYTES} bytes skipped");
        return Ok(Some(Err(format!("message of {length} bytes is over the {MAX_MESSAGE_BYTES}-byte limit"))));
    }
    let mut body = vec![0; length];
    input.read_exact(&mut body).await?;
    Ok(Some(bad_header.map_or(Ok(body), Err)))
}

/// Pass a well-formed message through; replace anything else with a [`MALFORMED`] request.
pub fn vet(body: &[u8]) -> Cow<'_, [u8]> {
    let text = match std::str::from_utf8(body) {
        Ok(t) => t,
        Err(e) => return Cow::Owned(synthetic(-32700, &format!("message is not valid UTF-8: {e}"), Value::Null)),
    };
    // The common case costs one typed parse; only a message that is not JSON-RPC pays for more.
    if let Ok(req) = serde_json::from_str::<Request>(text) {
        if req.params().is_none() && req.id().is_some() && req.method().starts_with("quill/") {
            return Cow::Owned(with_null_params(text).unwrap_or_else(|| body.to_vec()));
        }
        return Cow::Borrowed(body);
    }
    if serde_json::from_str::<Response>(text).is_ok() {
        return Cow::Borrowed(body);
    }
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return Cow::Owned(synthetic(-32700, &format!("invalid JSON: {e}"), Value::Null)),
    };
    // Valid JSON but not a JSON-RPC 2.0 message: answer with the id if there is a usable one.
    let id = match value.get("id") {
        Some(id @ (Value::Number(_) | Value::String(_))) => id.clone(),
        _ => Value::Null,
    };
    tracing::warn!("invalid JSON-RPC message (id {id})");
    Cow::Owned(synthetic(-32600, "not a JSON-RPC 2.0 request, notification or response", id))
}

/// JSON-RPC lets a request leave `params` out, but tower-lsp-server answers "Missing params field"
/// to a custom method registered with a parameter before the handler runs; `null` reaches the
/// handler. Only Quill's own methods are rewritten: the standard ones have handlers of their own.
fn with_null_params(text: &str) -> Option<Vec<u8>> {
    let mut value: Value = serde_json::from_str(text).ok()?;
    value.as_object_mut()?.insert("params".into(), Value::Null);
    serde_json::to_vec(&value).ok()
}

fn synthetic(code: i64, message: &str, id: Value) -> Vec<u8> {
    tracing::warn!(code, "malformed message: {message}");
    let msg = json!({"jsonrpc": "2.0", "id": id, "method": MALFORMED, "params": {"code": code, "message": message}});
    serde_json::to_vec(&msg).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vetted(body: &[u8]) -> Value {
        serde_json::from_slice(&vet(body)).expect("vet emits JSON")
    }

    #[test]
    fn good_messages_pass_untouched() {
        for msg in [
            &br#"{"jsonrpc":"2.0","id":1,"method":"shutdown"}"#[..],
            br#"{"jsonrpc":"2.0","method":"exit"}"#,
            br#"{"jsonrpc":"2.0","id":"a","result":null}"#,
            br#"{"jsonrpc":"2.0","id":3,"error":{"code":-1,"message":"no"}}"#,
        ] {
            assert!(matches!(vet(msg), Cow::Borrowed(_)), "{}", String::from_utf8_lossy(msg));
        }
    }

    #[test]
    fn quill_requests_without_params_get_null_params() {
        let v = vetted(br#"{"jsonrpc":"2.0","id":4,"method":"quill/chat/list"}"#);
        assert_eq!(v, json!({"jsonrpc": "2.0", "id": 4, "method": "quill/chat/list", "params": null}));
        // Notifications and standard methods pass untouched.
        for msg in [&br#"{"jsonrpc":"2.0","method":"quill/x"}"#[..], br#"{"jsonrpc":"2.0","id":1,"method":"shutdown"}"#]
        {
            assert!(matches!(vet(msg), Cow::Borrowed(_)));
        }
    }

    #[test]
    fn bad_messages_become_malformed_requests() {
        let v = vetted(b"{\"jsonrpc\": ");
        assert_eq!(
            (v["method"].as_str(), v["id"].clone(), v["params"]["code"].clone()),
            (Some(MALFORMED), Value::Null, json!(-32700))
        );
        let v = vetted(b"{\"a\":\"\xff\"}");
        assert_eq!(v["params"]["code"], -32700);
        let v = vetted(br#"{"jsonrpc":"1.0","id":7,"method":"x"}"#);
        assert_eq!((v["id"].clone(), v["params"]["code"].clone()), (json!(7), json!(-32600)));
        let v = vetted(b"[1, 2]");
        assert_eq!(v["params"]["code"], -32600);
    }

    #[tokio::test]
    async fn framing_resynchronises_after_garbage() {
        let input: &[u8] = b"Content-Length: 3\r\n\r\nabcnonsense\r\n\r\nContent-Length: 33\r\n\r\n{\"jsonrpc\":\"2.0\",\"method\":\"exit\"}";
        let mut out = sanitized(input);
        let mut all = String::new();
        out.read_to_string(&mut all).await.expect("read");
        // abc -> parse error; "nonsense" -> bad header; then the good message verbatim.
        assert_eq!(all.matches(MALFORMED).count(), 2, "{all}");
        assert!(all.ends_with("{\"jsonrpc\":\"2.0\",\"method\":\"exit\"}"), "{all}");
    }
}
