//! Signed requests whose body streams through pingora's proxy loop instead of being read here:
//! object uploads (PutObject, UploadPart) of known length on an `unsigned` or `streaming`
//! route, and, outside S3 (aws-sigv4-proxy's `--unsigned-payload`), any body of known length.
//! `upstream_request_filter` signs their header; for `streaming` the `request_body_filter`
//! frames the body as signed aws-chunks as it flows.

use super::body;
use crate::aws_chunked::{self, Encoder};
use crate::error::ProxyError;
use crate::service::Payload;
use crate::sign::{Signer, UNSIGNED_PAYLOAD};
use pingora::http::RequestHeader;
use pingora::proxy::Session;
use std::time::SystemTime;

/// How the body of a signed request streams through pingora (every other signed request,
/// bodiless ones included, goes through [`super::forward`]; pass-through routes are not
/// signed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyPlan {
    /// Streamed as is, signed as `UNSIGNED-PAYLOAD`.
    Unsigned,
    /// Streamed as aws-chunked with a signature per chunk (S3); the decoded length.
    Streaming(u64),
}

impl BodyPlan {
    /// How a request on a route signed by `signer` streams, or `None` when its body is read
    /// here. `body_check`: the allow list still has to see the body.
    pub(super) fn choose(session: &mut Session, signer: &Signer, body_check: bool) -> Option<Self> {
        // Only object uploads stream. Other S3 requests with bodies (DeleteObjects, completing a
        // multipart upload, bucket settings) are small XML documents, signed as SDKs sign them.
        // A body of unknown length (chunked) is buffered and signed too: S3 needs the length.
        // Outside S3 (aws-sigv4-proxy's --unsigned-payload) any body of known length streams.
        let upload = !session.as_downstream_mut().is_body_empty()
            && (is_object_upload(session.req_header()) || !signer.service().speaks_s3());
        // A check that waits for the body needs it read here, whatever the payload mode.
        let upload = upload && !body_check;
        match (signer.payload(), body::content_length(session)) {
            (Payload::Unsigned, Some(_)) if upload => Some(BodyPlan::Unsigned),
            (Payload::Streaming, Some(n)) if upload => Some(BodyPlan::Streaming(n)),
            _ => None,
        }
    }

    /// Signs the upstream header `req` for this plan; for [`BodyPlan::Streaming`], returns the
    /// encoder that frames the body, its chain starting from this signature.
    pub(super) fn sign(
        self,
        signer: &Signer,
        req: &mut RequestHeader,
    ) -> Result<Option<Encoder>, ProxyError> {
        // Fetched again: a refresh may have landed since request_filter.
        let credentials = signer.current_credentials()?;
        let now = SystemTime::now();
        let payload = match self {
            BodyPlan::Unsigned => UNSIGNED_PAYLOAD,
            BodyPlan::Streaming(decoded) => {
                aws_chunked::set_headers(req, decoded)?;
                aws_chunked::STREAMING_PAYLOAD
            }
        };
        let seed = signer.sign(req, credentials.clone(), payload, now)?;
        Ok(match self {
            BodyPlan::Unsigned => None,
            BodyPlan::Streaming(_) => {
                Some(Encoder::new(signer.chunk_signer(credentials, now, seed)))
            }
        })
    }
}

/// PutObject (`PUT` with no sub-resource) or UploadPart (`?partNumber=&uploadId=`).
fn is_object_upload(req: &RequestHeader) -> bool {
    req.method == http::Method::PUT
        && req.uri.query().unwrap_or("").split('&').all(|param| {
            let name = param.split('=').next().unwrap_or("");
            matches!(name, "" | "partNumber" | "uploadId" | "x-id")
        })
}
