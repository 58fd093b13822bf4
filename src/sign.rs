//! SigV4 signing of the upstream request header, with aws-sigv4.
//!
//! Which headers are signed is a deliberate choice: `host`, `content-type`, `content-md5` and every
//! `x-amz-*` header. Headers that proxies and meshes rewrite in transit (`user-agent`,
//! `x-forwarded-*`, trace ids, ...) are forwarded but not signed, so a hop after sigproxy cannot
//! break the signature by touching them.

use crate::credentials::CredentialSet;
use crate::error::ProxyError;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings,
};
use aws_sigv4::sign::v4;
use pingora::http::RequestHeader;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::SystemTime;

/// SHA-256 of the empty string, hex.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Signs requests for one route: a service, a region and a credential set.
#[derive(Debug)]
pub struct Signer {
    service: String,
    region: String,
    credentials: Arc<CredentialSet>,
    settings: SigningSettings,
}

impl Signer {
    pub fn new(service: &str, region: &str, credentials: Arc<CredentialSet>) -> Self {
        let mut settings = SigningSettings::default();
        if service == "lambda" {
            // Function URLs accept it, and it is required where CloudFront sits in front.
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        }
        Signer {
            service: service.to_string(),
            region: region.to_string(),
            credentials,
            settings,
        }
    }

    pub fn credentials(&self) -> &CredentialSet {
        &self.credentials
    }

    /// Credentials to sign with now, or 503 if the set has none.
    pub fn current_credentials(&self) -> Result<Credentials, ProxyError> {
        self.credentials.current()
    }

    /// Adds the SigV4 headers (`authorization`, `x-amz-date`, `x-amz-security-token`, and
    /// `x-amz-content-sha256` where the service wants it) to `req`.
    ///
    /// `req` must already carry the final `host` header and URI; `payload_sha256` is the hex
    /// SHA-256 of the exact body that will be sent.
    pub fn sign(
        &self,
        req: &mut RequestHeader,
        credentials: Credentials,
        payload_sha256: &str,
        time: SystemTime,
    ) -> Result<(), ProxyError> {
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
            SignableBody::Precomputed(payload_sha256.to_string()),
        )
        .map_err(|e| ProxyError::Signing(e.to_string()))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| ProxyError::Signing(e.to_string()))?
            .into_parts();
        for (name, value) in instructions.headers() {
            req.insert_header(name.to_string(), value)
                .map_err(|e| ProxyError::Signing(e.to_string()))?;
        }
        Ok(())
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
