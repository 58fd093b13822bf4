//! SigV4 signing of the upstream request header.
//!
//! The canonical request is built in [`canonical`] (proved identical to aws-sigv4's `sign()` by
//! this module's tests); the signing key and signature come from aws-sigv4's primitives, the
//! key cached for the day.
//!
//! Which headers are signed is a deliberate choice: `host`, `content-type`, `content-md5` and every
//! `x-amz-*` header. Headers that proxies and meshes rewrite in transit (`user-agent`,
//! `x-forwarded-*`, trace ids, ...) are forwarded but not signed, so a hop after sigproxy cannot
//! break the signature by touching them.

mod canonical;
pub mod debug;

use crate::aws_chunked::ChunkSigner;
use crate::config::{Payload, SigningConfig};
use crate::credentials::CredentialSet;
use crate::error::ProxyError;
use crate::service::Service;
use crate::target::PathRules;
use aws_credential_types::Credentials;
use aws_sigv4::sign::v4;
use canonical::{amz_date, canonical_request, PathEncoding};
use http::HeaderValue;
use pingora::http::RequestHeader;
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// SHA-256 of the empty string, hex.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// The payload hash of a body that is not signed (S3).
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// Signs requests for one route: a service, a region and a credential set.
#[derive(Debug)]
pub struct Signer {
    service: Service,
    region: String,
    payload: Payload,
    credentials: Arc<CredentialSet>,
    path_encoding: PathEncoding,
    /// Sends and signs `x-amz-content-sha256` ([`Service::sends_content_sha256`]).
    content_sha256_header: bool,
    key_cache: Mutex<Option<SigningKey>>,
    /// The session token as a header value, for the access key it belongs to: made once per
    /// set of credentials rather than copied and checked (about 1 KB) on every request.
    token_cache: Mutex<Option<(String, HeaderValue)>>,
}

/// A derived signing key: valid for one access key, one UTC day, this region and service.
struct SigningKey {
    access_key_id: String,
    day: String,
    key: Vec<u8>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("day", &self.day)
            .field("key", &"** redacted **")
            .finish()
    }
}

impl Signer {
    pub fn new(config: &SigningConfig, credentials: Arc<CredentialSet>) -> Self {
        Signer {
            service: config.service.clone(),
            region: config.region.clone(),
            payload: config.payload,
            credentials,
            // S3 signs the path as sent (single encoding, no normalisation).
            path_encoding: match config.service.path_rules() {
                PathRules::S3 => PathEncoding::Single,
                PathRules::Normalized => PathEncoding::Double,
            },
            // An unsigned body must say so: the service cannot tell otherwise.
            content_sha256_header: config.service.sends_content_sha256()
                || config.payload != crate::service::Payload::Signed,
            key_cache: Mutex::new(None),
            token_cache: Mutex::new(None),
        }
    }

    /// The service signed for; [`Service::signing_name`] is what the signature names.
    pub fn service(&self) -> &Service {
        &self.service
    }

    pub fn payload(&self) -> Payload {
        self.payload
    }

    /// Signs the chunks of a streaming body that follows a header signed with `seed_signature`.
    pub fn chunk_signer(
        &self,
        credentials: Credentials,
        time: SystemTime,
        seed_signature: String,
    ) -> ChunkSigner {
        ChunkSigner::new(
            credentials.into(),
            &self.region,
            self.service.signing_name(),
            time,
            seed_signature,
        )
    }

    pub fn credentials(&self) -> &CredentialSet {
        &self.credentials
    }

    /// Credentials to sign with now, or 503 if the set has none.
    pub fn current_credentials(&self) -> Result<Credentials, ProxyError> {
        self.credentials.current()
    }

    /// Adds the SigV4 headers (`authorization`, `x-amz-date`, `x-amz-security-token`, and
    /// `x-amz-content-sha256` where the service wants it) to `req`; returns the signature.
    ///
    /// `req` must already carry the final `host` header and URI; `payload_hash` is the hex
    /// SHA-256 of the exact body that will be sent, or `UNSIGNED-PAYLOAD`, or
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`.
    pub fn sign(
        &self,
        req: &mut RequestHeader,
        credentials: Credentials,
        payload_hash: &str,
        time: SystemTime,
    ) -> Result<String, ProxyError> {
        let date_time = amz_date(time);
        let day = &date_time[..8];
        let set = |req: &mut RequestHeader, name: &'static str, value: Option<HeaderValue>| {
            value
                .and_then(|v| req.insert_header(name, v).ok())
                .ok_or_else(|| ProxyError::Signing(format!("invalid {name} value")))
        };
        set(req, "x-amz-date", HeaderValue::from_str(&date_time).ok())?;
        match self.token_value(&credentials)? {
            Some(token) => set(req, "x-amz-security-token", Some(token))?,
            // Signing again with keys that have no token: the old one must not stay.
            None => {
                req.remove_header("x-amz-security-token");
            }
        }
        if self.content_sha256_header {
            set(
                req,
                "x-amz-content-sha256",
                HeaderValue::from_str(payload_hash).ok(),
            )?;
        }

        let mut signed = Vec::with_capacity(8);
        for (name, value) in req.headers.iter() {
            if is_signed(name.as_str()) {
                let value = value
                    .to_str()
                    .map_err(|_| ProxyError::BadRequest(format!("header '{name}' is not text")))?;
                signed.push((name.as_str(), value));
            }
        }
        let path_and_query = req.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut signed_names = String::with_capacity(128);
        let creq = canonical_request(
            req.method.as_str(),
            path_and_query,
            self.path_encoding,
            &mut signed,
            payload_hash,
            &mut signed_names,
        );

        // The string to sign, with the credential scope in the middle of it.
        let mut string_to_sign = String::with_capacity(160);
        string_to_sign.push_str("AWS4-HMAC-SHA256\n");
        string_to_sign.push_str(&date_time);
        string_to_sign.push('\n');
        let scope_start = string_to_sign.len();
        for part in [
            day,
            "/",
            &self.region,
            "/",
            self.service.signing_name(),
            "/aws4_request",
        ] {
            string_to_sign.push_str(part);
        }
        let scope = scope_start..string_to_sign.len();
        string_to_sign.push('\n');
        push_sha256_hex(&mut string_to_sign, creq.as_bytes());
        debug::log(&creq, &string_to_sign);
        let signature = self.with_key(&credentials, day, time, |key| {
            v4::calculate_signature(key, string_to_sign.as_bytes())
        });

        let mut authorization =
            String::with_capacity(100 + scope.len() + signed_names.len() + signature.len());
        for part in [
            "AWS4-HMAC-SHA256 Credential=",
            credentials.access_key_id(),
            "/",
            &string_to_sign[scope],
            ", SignedHeaders=",
            &signed_names,
            ", Signature=",
            &signature,
        ] {
            authorization.push_str(part);
        }
        set(
            req,
            "authorization",
            HeaderValue::try_from(authorization).ok(),
        )?;
        Ok(signature)
    }

    /// The session token of `credentials` as a header value, if they have one.
    fn token_value(&self, credentials: &Credentials) -> Result<Option<HeaderValue>, ProxyError> {
        let Some(token) = credentials.session_token() else {
            return Ok(None);
        };
        let mut cache = self.token_cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((key, value)) = cache.as_ref() {
            if key == credentials.access_key_id() {
                return Ok(Some(value.clone()));
            }
        }
        let value = HeaderValue::from_str(token)
            .map_err(|_| ProxyError::Signing("invalid x-amz-security-token value".into()))?;
        *cache = Some((credentials.access_key_id().to_string(), value.clone()));
        Ok(Some(value))
    }

    /// Runs `f` with the signing key for these credentials and day, derived once per day.
    fn with_key<T>(
        &self,
        credentials: &Credentials,
        day: &str,
        time: SystemTime,
        f: impl FnOnce(&[u8]) -> T,
    ) -> T {
        let mut cache = self.key_cache.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = cache
            .as_ref()
            .is_some_and(|k| k.day == day && k.access_key_id == credentials.access_key_id());
        if !fresh {
            let key = v4::generate_signing_key(
                credentials.secret_access_key(),
                time,
                &self.region,
                self.service.signing_name(),
            );
            *cache = Some(SigningKey {
                access_key_id: credentials.access_key_id().to_string(),
                day: day.to_string(),
                key: key.as_ref().to_vec(),
            });
        }
        f(&cache.as_ref().expect("just filled").key)
    }
}

/// Whether a (lower-case) header name is part of the signature.
pub fn is_signed(name: &str) -> bool {
    matches!(name, "host" | "content-type" | "content-md5") || name.starts_with("x-amz-")
}

/// Hex SHA-256 of a body.
pub fn sha256_hex(body: &[u8]) -> String {
    let mut out = String::with_capacity(64);
    push_sha256_hex(&mut out, body);
    out
}

/// Appends the hex SHA-256 of `data` to `out`.
fn push_sha256_hex(out: &mut String, data: &[u8]) {
    let mut hex = [0u8; 64];
    hex::encode_to_slice(Sha256::digest(data), &mut hex).expect("64 hex digits for 32 bytes");
    out.push_str(std::str::from_utf8(&hex).expect("hex is ASCII"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CredentialsConfig, Source};
    use crate::target::upstream_target;
    use aws_sigv4::http_request::{
        sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest,
        SigningSettings, UriPathNormalizationMode,
    };
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn empty_hash_constant_is_right() {
        assert_eq!(sha256_hex(b""), EMPTY_SHA256);
    }

    #[test]
    fn only_stable_headers_are_signed() {
        for name in [
            "host",
            "content-type",
            "content-md5",
            "x-amz-meta-a",
            "x-amz-target",
        ] {
            assert!(is_signed(name), "{name}");
        }
        for name in [
            "user-agent",
            "x-forwarded-for",
            "x-amzn-trace-id",
            "traceparent",
            "accept",
            "content-length",
        ] {
            assert!(!is_signed(name), "{name}");
        }
    }

    fn signer(service: &str) -> Signer {
        let set = Arc::new(CredentialSet::new(CredentialsConfig {
            name: "t".into(),
            source: Source::Default,
            assume_role: vec![],
            sts_token: None,
            refresh_before_expiry: Duration::from_secs(300),
        }));
        let config = SigningConfig {
            service: service.into(),
            region: "eu-west-1".into(),
            credentials: "t".into(),
            payload: Payload::Signed,
        };
        Signer::new(&config, set)
    }

    /// aws-sigv4's own `sign()`, configured as sigproxy used it before the fast path: the
    /// reference every signature must equal.
    fn reference(
        service: &str,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        creds: &Credentials,
        payload: &str,
        time: SystemTime,
    ) -> String {
        let mut settings = SigningSettings::default();
        if service == "s3" {
            settings.percent_encoding_mode = PercentEncodingMode::Single;
            settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        }
        if service == "s3" || service == "lambda" {
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        }
        let identity = creds.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("eu-west-1")
            .name(service)
            .time(time)
            .settings(settings)
            .build()
            .unwrap()
            .into();
        let signed: Vec<(&str, &str)> = headers
            .iter()
            .copied()
            .filter(|(n, _)| is_signed(n))
            .collect();
        let request = SignableRequest::new(
            method,
            target,
            signed.into_iter(),
            SignableBody::Precomputed(payload.into()),
        )
        .unwrap();
        let (instructions, _) = sign(request, &params).unwrap().into_parts();
        let authorization = instructions
            .headers()
            .find(|(n, _)| *n == "authorization")
            .map(|(_, v)| v.to_string())
            .unwrap();
        authorization
    }

    #[test]
    fn signatures_equal_aws_sigv4_sign_for_every_shape_of_request() {
        let with_token = Credentials::new(
            "ASIAEXAMPLE1",
            "secret/with+chars=",
            Some("token+/=".repeat(40)),
            None,
            "t",
        );
        let without_token = Credentials::new("AKIAEXAMPLE2", "another-secret", None, None, "t");
        let paths = [
            "/",
            "/orders/42",
            "/a%20b/c%2Fd/caf%C3%A9",
            "/x//y/./z/../w/",
            "/sub-delims!$&'()*+,;=:@",
            "/bucket/dots/../x//y",
            "",
        ];
        let queries = [
            None,
            Some("b=2&a=1&a=0"),
            Some("q=a+b%20c&empty=&flag"),
            Some("prefix=dir%2F&delimiter=%2F&list-type=2"),
            Some("uploads"),
            Some("partNumber=1&uploadId=abc%2B%3D"),
        ];
        let header_sets: [&[(&str, &str)]; 3] = [
            &[("host", "abc.lambda-url.eu-west-1.on.aws")],
            &[
                ("host", "s3.eu-west-1.amazonaws.com"),
                ("content-type", "  application/json;  charset=utf-8 "),
                ("x-amz-meta-b", "two"),
                ("x-amz-meta-a", "one  spaced   value"),
                ("x-amz-meta-a", "second"),
                ("user-agent", "not signed"),
                ("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg=="),
            ],
            &[
                ("host", "127.0.0.1:9000"),
                ("x-amz-copy-source", "/bucket/key%20with%20space"),
                ("x-amz-checksum-crc32", "AAAAAA=="),
            ],
        ];
        let payloads = [
            EMPTY_SHA256,
            UNSIGNED_PAYLOAD,
            crate::aws_chunked::STREAMING_PAYLOAD,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
        ];
        let times = [
            UNIX_EPOCH + Duration::from_secs(1_795_000_000),
            UNIX_EPOCH + Duration::from_secs(1_795_086_399),
            UNIX_EPOCH + Duration::from_secs(1_795_086_400),
        ];
        let mut checked = 0;
        for service in ["lambda", "s3", "execute-api"] {
            let signer = signer(service);
            let rules = signer.service().path_rules();
            for (i, path) in paths.iter().enumerate() {
                for query in queries {
                    let target = upstream_target(path, query, None, "", rules).unwrap();
                    let headers = header_sets[(i + checked) % header_sets.len()];
                    let creds = if checked % 2 == 0 {
                        &with_token
                    } else {
                        &without_token
                    };
                    let payload = payloads[checked % payloads.len()];
                    let time = times[checked % times.len()];
                    let method = ["GET", "PUT", "POST"][checked % 3];

                    let mut req = RequestHeader::build(method, target.as_bytes(), None).unwrap();
                    for (name, value) in headers {
                        req.append_header(name.to_string(), *value).unwrap();
                    }
                    signer.sign(&mut req, creds.clone(), payload, time).unwrap();
                    let ours = req.headers["authorization"].to_str().unwrap();
                    let want = reference(service, method, &target, headers, creds, payload, time);
                    assert_eq!(ours, want, "{service} {method} {target} {headers:?}");
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 3 * paths.len() * queries.len());
    }

    #[test]
    fn the_day_s_signing_key_follows_the_credentials() {
        let signer = signer("lambda");
        let time = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let first = Credentials::new("AKID1", "secret-one", None, None, "t");
        let second = Credentials::new("AKID2", "secret-two", None, None, "t");
        for creds in [&first, &second, &first] {
            let mut req = RequestHeader::build("GET", b"/", None).unwrap();
            req.insert_header("host", "h").unwrap();
            signer
                .sign(&mut req, creds.clone(), EMPTY_SHA256, time)
                .unwrap();
            let want = reference(
                "lambda",
                "GET",
                "/",
                &[("host", "h")],
                creds,
                EMPTY_SHA256,
                time,
            );
            assert_eq!(req.headers["authorization"].to_str().unwrap(), want);
        }
        assert!(!format!("{signer:?}").contains("secret"), "{signer:?}");
    }
}
