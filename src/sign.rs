//! SigV4 signing of the upstream request header, with aws-sigv4.
//!
//! Which headers are signed is a deliberate choice: `host`, `content-type`, `content-md5` and every
//! `x-amz-*` header. Headers that proxies and meshes rewrite in transit (`user-agent`,
//! `x-forwarded-*`, trace ids, ...) are forwarded but not signed, so a hop after sigproxy cannot
//! break the signature by touching them.

use crate::aws_chunked::ChunkSigner;
use crate::config::{Payload, SigningConfig};
use crate::credentials::CredentialSet;
use crate::error::ProxyError;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use pingora::http::RequestHeader;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::SystemTime;

/// SHA-256 of the empty string, hex.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// The payload hash of a body that is not signed (S3).
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// Signs requests for one route: a service, a region and a credential set.
#[derive(Debug)]
pub struct Signer {
    service: String,
    region: String,
    payload: Payload,
    credentials: Arc<CredentialSet>,
    settings: SigningSettings,
}

impl Signer {
    pub fn new(config: &SigningConfig, credentials: Arc<CredentialSet>) -> Self {
        let mut settings = SigningSettings::default();
        match config.service.as_str() {
            // Function URLs accept it, and it is required where CloudFront sits in front.
            "lambda" => settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256,
            // S3 signs the path as sent (single encoding, no normalisation) and always wants
            // x-amz-content-sha256.
            "s3" => {
                settings.percent_encoding_mode = PercentEncodingMode::Single;
                settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
                settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
            }
            _ => {}
        }
        Signer {
            service: config.service.clone(),
            region: config.region.clone(),
            payload: config.payload,
            credentials,
            settings,
        }
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
            &self.service,
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
        let identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(&self.service)
            .time(time)
            .settings(self.settings.clone())
            .build()
            .map_err(|e| ProxyError::Signing(e.to_string()))?
            .into();

        let uri = req.uri.to_string();
        let method = req.method.as_str().to_string();
        let signed_headers = req
            .headers
            .iter()
            .filter(|(name, _)| is_signed(name.as_str()))
            .map(|(name, value)| {
                value
                    .to_str()
                    .map(|v| (name.as_str(), v))
                    .map_err(|_| ProxyError::BadRequest(format!("header '{name}' is not text")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let signable = SignableRequest::new(
            &method,
            uri.as_str(),
            signed_headers.into_iter(),
            SignableBody::Precomputed(payload_hash.to_string()),
        )
        .map_err(|e| ProxyError::Signing(e.to_string()))?;
        let (instructions, signature) = sign(signable, &params)
            .map_err(|e| ProxyError::Signing(e.to_string()))?
            .into_parts();
        for (name, value) in instructions.headers() {
            req.insert_header(name.to_string(), value)
                .map_err(|e| ProxyError::Signing(e.to_string()))?;
        }
        Ok(signature)
    }
}

/// Whether a (lower-case) header name is part of the signature.
pub fn is_signed(name: &str) -> bool {
    matches!(name, "host" | "content-type" | "content-md5") || name.starts_with("x-amz-")
}

/// Hex SHA-256 of a body.
pub fn sha256_hex(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
