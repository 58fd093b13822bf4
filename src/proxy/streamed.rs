//! Signed requests whose body streams through pingora's proxy loop instead of being read here:
//! object uploads (PutObject, UploadPart) of known length on an `unsigned` or `streaming`
//! route, and, outside S3 (aws-sigv4-proxy's `--unsigned-payload`), any body of known length.
//! `upstream_request_filter` signs their header; for `streaming` the `request_body_filter`
//! frames the body as signed aws-chunks as it flows. An upload the client framed itself as
//! aws-chunked with a checksum trailer (what AWS SDKs send) streams as sent on `unsigned` S3
//! routes, its framing checked as it flows; on `streaming` S3 routes, whose users asked for
//! every byte to be signed, it is re-framed with signed chunks and a signed trailer.

use super::body;
use crate::aws_chunked::{self, ClientForm, Encoder, FrameCheck, Reframer};
use crate::error::ProxyError;
use crate::service::Payload;
use crate::sign::{Signer, UNSIGNED_PAYLOAD};
use bytes::Bytes;
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
    /// Framed by the client as aws-chunked with unsigned chunks and a checksum trailer (S3):
    /// streamed as sent, signed as `STREAMING-UNSIGNED-PAYLOAD-TRAILER` (`unsigned` routes).
    ClientFramed,
    /// The same form on a `streaming` route: re-framed as it flows, each chunk and the trailer
    /// signed (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`).
    Reframed,
}

/// What happens to the body of a [`BodyPlan`] as it flows.
pub(super) enum BodyFilter {
    /// Framed as signed aws-chunks.
    Encode(Encoder),
    /// Forwarded as is, its aws-chunked framing checked.
    Check(FrameCheck),
    /// Re-framed with signed chunks and a signed trailer.
    Reframe(Reframer),
}

impl BodyFilter {
    /// The next piece of the body, as it goes upstream; `end`: the last piece.
    pub(super) fn push(&mut self, piece: Bytes, end: bool) -> Result<Bytes, ProxyError> {
        match self {
            BodyFilter::Encode(encoder) => Ok(encoder.push(&piece, end)),
            BodyFilter::Check(check) => {
                check.feed(&piece, end)?;
                Ok(piece)
            }
            BodyFilter::Reframe(reframer) => reframer.push(&piece, end),
        }
    }
}

/// Whether a body the client framed as aws-chunked with a checksum trailer may go upstream as
/// sent: on S3 routes that do not sign the body's SHA-256, for object uploads, and only when
/// the allow list need not read the body.
pub(super) fn admit_client_framed(
    signer: &Signer,
    req: &RequestHeader,
    body_check: bool,
) -> Result<(), ProxyError> {
    let refuse = |why: &str| Err(ProxyError::BadRequest(why.to_string()));
    // The route comes first: a refusal suggests only a form this route takes.
    match aws_chunked::client_form(req) {
        ClientForm::Plain => Ok(()),
        _ if !signer.service().speaks_s3() => {
            refuse("only S3 routes take aws-chunked bodies; send the body plain")
        }
        _ if signer.payload() == Payload::Signed => refuse(
            "this route signs the body's SHA-256 (payload: signed); send the body plain, \
             without a checksum trailer (AWS SDKs: request_checksum_calculation = when_required)",
        ),
        ClientForm::Other => refuse(
            "the body is aws-chunked with chunks signed by the client; send it plain, or as \
             STREAMING-UNSIGNED-PAYLOAD-TRAILER, and sigproxy signs it",
        ),
        ClientForm::UnsignedTrailer if !is_object_upload(req) => {
            refuse("only object uploads (PutObject, UploadPart) may be aws-chunked")
        }
        ClientForm::UnsignedTrailer if body_check => {
            refuse("the route's allow list reads this body; send it plain")
        }
        ClientForm::UnsignedTrailer => {
            let check = FrameCheck::new(req)?;
            if signer.payload() == Payload::Streaming {
                aws_chunked::reframed_length(&check)?;
            }
            Ok(())
        }
    }
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
        if aws_chunked::client_form(session.req_header()) == ClientForm::UnsignedTrailer {
            // Vetted by admit_client_framed; its length may be unknown (chunked).
            return Some(match signer.payload() {
                Payload::Streaming => BodyPlan::Reframed,
                _ => BodyPlan::ClientFramed,
            });
        }
        match (signer.payload(), body::content_length(session)) {
            (Payload::Unsigned, Some(_)) if upload => Some(BodyPlan::Unsigned),
            (Payload::Streaming, Some(n)) if upload => Some(BodyPlan::Streaming(n)),
            _ => None,
        }
    }

    /// Signs the upstream header `req` for this plan; returns what the body goes through: for
    /// [`BodyPlan::Streaming`], the encoder that frames it, its chain starting from this
    /// signature; for [`BodyPlan::ClientFramed`], the check of its framing; for
    /// [`BodyPlan::Reframed`], the re-framer, its chain starting from this signature.
    pub(super) fn sign(
        self,
        signer: &Signer,
        req: &mut RequestHeader,
    ) -> Result<Option<BodyFilter>, ProxyError> {
        // Fetched again: a refresh may have landed since request_filter.
        let credentials = signer.current_credentials()?;
        let now = SystemTime::now();
        let payload = match self {
            BodyPlan::Unsigned => UNSIGNED_PAYLOAD,
            BodyPlan::Streaming(decoded) => {
                aws_chunked::set_headers(req, decoded)?;
                aws_chunked::STREAMING_PAYLOAD
            }
            BodyPlan::ClientFramed => {
                if !req.headers.contains_key("content-length") {
                    // The client's chunked transfer (dropped as hop-by-hop) is ours too.
                    req.insert_header("transfer-encoding", "chunked")
                        .map_err(|e| ProxyError::Internal(e.to_string()))?;
                }
                aws_chunked::UNSIGNED_TRAILER
            }
            BodyPlan::Reframed => {
                aws_chunked::set_reframed_headers(req, &FrameCheck::new(req)?)?;
                aws_chunked::SIGNED_TRAILER
            }
        };
        let seed = signer.sign(req, &credentials, payload, now)?;
        Ok(match self {
            BodyPlan::Unsigned => None,
            BodyPlan::Streaming(_) => Some(BodyFilter::Encode(Encoder::new(signer.chunk_signer(
                credentials,
                now,
                seed,
            )))),
            BodyPlan::ClientFramed => Some(BodyFilter::Check(FrameCheck::new(req)?)),
            BodyPlan::Reframed => {
                let signer = signer.chunk_signer(credentials, now, seed);
                Some(BodyFilter::Reframe(Reframer::new(
                    FrameCheck::new(req)?,
                    signer,
                )))
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
