//! SigV4 and SigV4A signing of the upstream request header.
//!
//! The canonical request is built in [`canonical`] (proved identical to aws-sigv4's `sign()` by
//! this module's tests); the signing key and signature come from aws-sigv4's primitives: for
//! SigV4 an HMAC key cached for the day, for SigV4A an ECDSA P-256 key derived from the secret
//! once per access key (the derivation is an HMAC loop; the key does not depend on the date).
//!
//! Which headers are signed is a deliberate choice: `host`, `content-type`, `content-md5` and every
//! `x-amz-*` header. Headers that proxies and meshes rewrite in transit (`user-agent`,
//! `x-forwarded-*`, trace ids, ...) are forwarded but not signed, so a hop after sigproxy cannot
//! break the signature by touching them.

mod canonical;
pub mod debug;

use crate::aws_chunked::ChunkSigner;
use crate::config::{Algorithm, Payload, SigningConfig};
use crate::credentials::CredentialSet;
use crate::error::ProxyError;
use crate::service::{PathRules, Service};
use aws_credential_types::Credentials;
use aws_sigv4::sign::{v4, v4a};
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
    /// The region, or with SigV4A the region set (`X-Amz-Region-Set`).
    region: String,
    payload: Payload,
    algorithm: Algorithm,
    credentials: Arc<CredentialSet>,
    path_encoding: PathEncoding,
    /// Sends and signs `x-amz-content-sha256` ([`Service::sends_content_sha256`]).
    content_sha256_header: bool,
    key_cache: Mutex<Option<SigningKey>>,
    /// The session token as a header value, for the access key it belongs to: made once per
    /// set of credentials rather than copied and checked (about 1 KB) on every request.
    token_cache: Mutex<Option<(String, HeaderValue)>>,
}

/// A derived signing key: for SigV4 valid for one access key, one UTC day, this region and
/// service; for SigV4A (`day` is `None`) the access key's ECDSA P-256 private scalar.
struct SigningKey {
    access_key_id: String,
    day: Option<String>,
    key: Arc<[u8]>,
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
            algorithm: config.algorithm,
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
    /// SigV4 only: the configuration refuses `streaming` with SigV4A.
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
    /// `x-amz-content-sha256` where the service wants it; for SigV4A `x-amz-region-set` too) to
    /// `req`; returns the signature.
    ///
    /// `req` must already carry the final `host` header and URI; `payload_hash` is the hex
    /// SHA-256 of the exact body that will be sent, or `UNSIGNED-PAYLOAD`, or
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`.
    pub fn sign(
        &self,
        req: &mut RequestHeader,
        credentials: &Credentials,
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
        match self.token_value(credentials)? {
            Some(token) => set(req, "x-amz-security-token", Some(token))?,
            // Signing again with keys that have no token: the old one must not stay.
            None => {
                req.remove_header("x-amz-security-token");
            }
        }
        match self.algorithm {
            Algorithm::SigV4a => set(
                req,
                "x-amz-region-set",
                HeaderValue::from_str(&self.region).ok(),
            )?,
            // A client's own would be signed and sent, naming regions this route does not.
            Algorithm::SigV4 => {
                req.remove_header("x-amz-region-set");
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
        string_to_sign.push_str(self.algorithm.name());
        string_to_sign.push('\n');
        string_to_sign.push_str(&date_time);
        string_to_sign.push('\n');
        let scope_start = string_to_sign.len();
        string_to_sign.push_str(day);
        // SigV4A's scope names no region: the region set is a signed header instead.
        if self.algorithm == Algorithm::SigV4 {
            string_to_sign.push('/');
            string_to_sign.push_str(&self.region);
        }
        for part in ["/", self.service.signing_name(), "/aws4_request"] {
            string_to_sign.push_str(part);
        }
        let scope = scope_start..string_to_sign.len();
        string_to_sign.push('\n');
        push_sha256_hex(&mut string_to_sign, creq.as_bytes());
        debug::log(&creq, &string_to_sign);
        let key = self.key(credentials, day, time);
        let signature = match self.algorithm {
            Algorithm::SigV4 => v4::calculate_signature(&key, string_to_sign.as_bytes()),
            Algorithm::SigV4a => v4a::calculate_signature(&key, string_to_sign.as_bytes()),
        };

        let mut authorization =
            String::with_capacity(100 + scope.len() + signed_names.len() + signature.len());
        for part in [
            self.algorithm.name(),
            " Credential=",
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

    /// The signing key for these credentials (and with SigV4 this day), derived once per
    /// access key and day. The signature is computed outside the lock: an ECDSA signature takes
    /// longer than a request should wait for another's.
    fn key(&self, credentials: &Credentials, day: &str, time: SystemTime) -> Arc<[u8]> {
        let day = (self.algorithm == Algorithm::SigV4).then_some(day);
        let mut cache = self.key_cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = cache.as_ref() {
            if k.day.as_deref() == day && k.access_key_id == credentials.access_key_id() {
                return k.key.clone();
            }
        }
        let key: Arc<[u8]> = match self.algorithm {
            Algorithm::SigV4 => v4::generate_signing_key(
                credentials.secret_access_key(),
                time,
                &self.region,
                self.service.signing_name(),
            )
            .as_ref()
            .into(),
            Algorithm::SigV4a => v4a::generate_signing_key(
                credentials.access_key_id(),
                credentials.secret_access_key(),
            )
            .as_ref()
            .into(),
        };
        *cache = Some(SigningKey {
            access_key_id: credentials.access_key_id().to_string(),
            day: day.map(str::to_string),
            key: key.clone(),
        });
        key
    }
}

/// Whether a (lower-case) header name is part of the signature. `content-encoding` says how
/// the upstream reads the body (`aws-chunked`, `gzip`): signed, as AWS's SDKs sign it.
pub fn is_signed(name: &str) -> bool {
    matches!(
        name,
        "host" | "content-type" | "content-md5" | "content-encoding"
    ) || name.starts_with("x-amz-")
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
mod tests;
