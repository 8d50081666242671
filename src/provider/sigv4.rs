//! AWS Signature Version 4 for Bedrock requests: a thin wrapper over the `aws-sigv4` crate that
//! adds the signature headers to a request about to be sent.

use std::{fmt, time::SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::{
    http_request::{SignableBody, SignableRequest, SigningSettings, sign as aws_sign},
    sign::v4,
};
use aws_smithy_runtime_api::client::identity::Identity;
use reqwest::{
    Method,
    header::{HeaderMap, HeaderName, HeaderValue},
};

use crate::config::Secret;

/// Static AWS credentials (from `$AWS_ACCESS_KEY_ID`, `$AWS_SECRET_ACCESS_KEY`, `$AWS_SESSION_TOKEN`).
#[derive(Clone)]
pub struct AwsCreds {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    /// Present for temporary credentials (STS, SSO).
    pub session_token: Option<Secret>,
}

impl fmt::Debug for AwsCreds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCreds").field("session_token", &self.session_token.is_some()).finish_non_exhaustive()
    }
}

/// The headers the signature puts on a request; removed first so a re-sign replaces them.
const SIGNATURE_HEADERS: [&str; 4] = ["authorization", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token"];

/// Sign a request: adds `authorization` and `x-amz-date` (plus `x-amz-security-token` for
/// temporary credentials) to `headers`. Every header already in `headers` is signed, along
/// with `host` taken from `url`.
///
/// `url` must be percent-encoded once, as it goes on the wire (a Bedrock model id's `:` as
/// `%3A`); the canonical URI encodes it a second time, as every service but S3 expects.
/// `body` must be the exact bytes sent.
#[allow(clippy::too_many_arguments)]
pub fn sign(
    method: &Method,
    url: &str,
    headers: &mut HeaderMap,
    body: &[u8],
    creds: &AwsCreds,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Result<(), String> {
    for name in SIGNATURE_HEADERS {
        headers.remove(name);
    }
    let identity: Identity = Credentials::new(
        creds.access_key_id.clone(),
        creds.secret_access_key.expose(),
        creds.session_token.as_ref().map(|t| t.expose().to_owned()),
        None,
        "quill",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("cannot sign the request: {e}"))?
        .into();
    let mut pairs = Vec::with_capacity(headers.len());
    for (name, value) in headers.iter() {
        let value =
            value.to_str().map_err(|_| format!("cannot sign the request: header `{name}` is not visible ASCII"))?;
        pairs.push((name.as_str(), value));
    }
    // aws-sigv4 logs the canonical request at trace level, and with temporary credentials that
    // holds the session token: keep its logs from reaching any subscriber.
    let signed = tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), || {
        let request = SignableRequest::new(method.as_str(), url, pairs.into_iter(), SignableBody::Bytes(body))?;
        aws_sign(request, &params)
    })
    .map_err(|e| format!("cannot sign the request for `{url}`: {}", super::http::error_chain(&e)))?;
    let (instructions, _signature) = signed.into_parts();
    let (new_headers, _params) = instructions.into_parts();
    for h in new_headers {
        let mut value =
            HeaderValue::from_str(h.value()).map_err(|_| format!("the signature header `{}` is invalid", h.name()))?;
        // The signature is not the secret, but it authorises this request until it expires.
        if h.sensitive() || h.name() == "authorization" {
            value.set_sensitive(true);
        }
        let name = HeaderName::from_static(h.name());
        headers.insert(name, value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/invoke-with-response-stream";
    const BODY: &str =
        r#"{"anthropic_version":"bedrock-2023-05-31","max_tokens":64,"messages":[{"role":"user","content":"Hi"}]}"#;

    fn creds(token: Option<&str>) -> AwsCreds {
        AwsCreds {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into()),
            session_token: token.map(|t| Secret::new(t.into())),
        }
    }

    /// 2025-01-01T00:00:00Z.
    fn time() -> SystemTime {
        SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_735_689_600)
    }

    fn content_type_only() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static("application/json"));
        h
    }

    #[test]
    fn the_reference_vector_signs_the_double_encoded_path() {
        let mut h = content_type_only();
        sign(&Method::POST, URL, &mut h, BODY.as_bytes(), &creds(None), "us-east-1", "bedrock", time()).expect("signs");
        assert_eq!(h.get("x-amz-date").map(|v| v.to_str().expect("ascii")), Some("20250101T000000Z"));
        let auth = h.get("authorization").expect("authorization");
        assert!(auth.is_sensitive());
        assert_eq!(
            auth.to_str().expect("ascii"),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250101/us-east-1/bedrock/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=f35972f0633cc88e3b92e8bb7d7c4f71693e292ad7b46b2549952c0cbba365ec"
        );
        assert!(h.get("x-amz-security-token").is_none());
        assert!(h.get("x-amz-content-sha256").is_none());
        assert_eq!(h.len(), 3);

        // Signing again replaces the old signature rather than adding a second one.
        sign(&Method::POST, URL, &mut h, BODY.as_bytes(), &creds(None), "us-east-1", "bedrock", time())
            .expect("signs again");
        assert_eq!(h.get_all("authorization").iter().count(), 1);
        assert!(h.get("authorization").expect("auth").to_str().expect("ascii").ends_with("cbba365ec"));
    }

    #[test]
    fn any_change_changes_the_signature() {
        let sig = |url: &str, body: &str, region: &str| {
            let mut h = content_type_only();
            sign(&Method::POST, url, &mut h, body.as_bytes(), &creds(None), region, "bedrock", time()).expect("signs");
            h["authorization"].to_str().expect("ascii").rsplit('=').next().expect("sig").to_owned()
        };
        let base = sig(URL, BODY, "us-east-1");
        assert_ne!(sig(URL, &BODY.replace("64", "65"), "us-east-1"), base);
        assert_ne!(sig(URL, BODY, "us-west-2"), base);
        assert_ne!(sig(&URL.replace("%3A", ":"), BODY, "us-east-1"), base);
    }

    #[test]
    fn a_session_token_is_signed_and_sent_as_sensitive() {
        let mut h = content_type_only();
        let token = "FwoGZXIvYXdzEXAMPLETOKEN//+=";
        sign(&Method::POST, URL, &mut h, BODY.as_bytes(), &creds(Some(token)), "us-east-1", "bedrock", time())
            .expect("signs");
        let t = h.get("x-amz-security-token").expect("token header");
        assert!(t.is_sensitive());
        assert_eq!(t.to_str().expect("ascii"), token);
        let auth = h["authorization"].to_str().expect("ascii");
        assert!(auth.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token,"), "{auth}");
        assert!(!auth.ends_with("cbba365ec"));
    }

    #[test]
    fn credentials_never_show_in_debug_output() {
        let c = creds(Some("the-session-token"));
        let shown = format!("{c:?}");
        assert!(!shown.contains("wJalrXUtnFEMI") && !shown.contains("the-session-token"), "{shown}");
    }
}
