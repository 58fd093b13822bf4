//! S3 requests classified into the IAM actions S3's authorization checks for them, following
//! "Required permissions for Amazon S3 API operations" and the Service Authorization Reference:
//! the method, the sub-resource query parameter (`?acl`, `?policy`, `?uploadId`, …), and headers
//! that do more than the operation's name says (`x-amz-copy-source`, `x-amz-acl`,
//! `x-amz-grant-*`, `x-amz-tagging`, object-lock headers).
//!
//! Fail closed: a query parameter that is neither a known sub-resource nor a known harmless one,
//! a sub-resource on a method or level it has no operation for, or any repeated parameter is
//! [`Unclear`], never a best guess: new S3 features arrive as new parameters, and an allow list
//! written before one existed must not grant it.

mod bucket;
mod copy;
mod layout;
mod object;
mod query;
#[cfg(test)]
mod tests;

pub use layout::BucketLayout;

use super::delete::delete_needs;
use super::{Need, Unclear};
use bucket::{bucket_op, service};
use http::{HeaderMap, Method};
use object::object_op;
use query::read_query;

/// An S3 request as it will be sent upstream.
#[derive(Debug, Clone, Copy)]
pub struct S3Request<'a> {
    pub method: &'a Method,
    /// The target path percent-decoded (S3 keys are literal: no dot-segment resolution),
    /// including any base path of the upstream.
    pub path: &'a [u8],
    /// The target's query as sent: names and values percent-encoded, `&`-separated, may be
    /// empty.
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub layout: &'a BucketLayout,
}

/// What an S3 request needs granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum S3Needs {
    /// Every one of these must be granted.
    Needs(Vec<Need>),
    /// `POST ?delete` (DeleteObjects): the keys are in the body, which must be read and passed
    /// to [`S3Needs::resolve`] (or [`delete_needs`]) before anything is granted.
    DeleteObjects {
        /// The bucket's path with a trailing `/` (`/bucket/`, or `/` on a bucket upstream), to
        /// which each decoded key is appended.
        key_prefix: Vec<u8>,
        /// `x-amz-bypass-governance-retention` was sent: every key also needs
        /// `s3:BypassGovernanceRetention` ([`S3Needs::resolve`] adds it).
        bypass_governance_retention: bool,
    },
}

impl S3Needs {
    /// All the needs, reading a `DeleteObjects` body when there is one (`body` is ignored
    /// otherwise).
    pub fn resolve(self, body: &[u8]) -> Result<Vec<Need>, Unclear> {
        match self {
            S3Needs::Needs(needs) => Ok(needs),
            S3Needs::DeleteObjects {
                key_prefix,
                bypass_governance_retention,
            } => {
                let mut needs = delete_needs(&key_prefix, body)?;
                if bypass_governance_retention {
                    let bypass: Vec<Need> = needs
                        .iter()
                        .map(|n| Need::new(BYPASS, &n.path, None))
                        .collect();
                    needs.extend(bypass);
                }
                Ok(needs)
            }
        }
    }
}

const BYPASS: &str = "s3:BypassGovernanceRetention";

/// What the request's `x-amz-copy-source` (if any) reads: one need on the source, mapped into
/// the route's space. For routes without an allow list, which still keep copies within what
/// the route reaches.
pub fn copy_source(headers: &HeaderMap, layout: &BucketLayout) -> Result<Option<Need>, Unclear> {
    match copy::header(headers)? {
        Some(value) => copy::source_need(value, layout).map(Some),
        None => Ok(None),
    }
}

/// Sorts a request into an S3 operation's needs; see the module documentation.
pub fn classify(req: &S3Request) -> Result<S3Needs, Unclear> {
    if let BucketLayout::Unsupported(why) = req.layout {
        return Err(Unclear::Unknown(why.clone()));
    }
    let query = read_query(req.query)?;
    let copy_source = copy::header(req.headers)?;
    let Some(rest) = req.path.strip_prefix(b"/") else {
        return Err(Unclear::Unknown("the path does not start with '/'".into()));
    };
    match req.layout {
        BucketLayout::PathStyle if rest.is_empty() => service(req, &query, copy_source),
        BucketLayout::PathStyle => {
            let (bucket, key) = match rest.iter().position(|&b| b == b'/') {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &b""[..]),
            };
            if bucket.is_empty() {
                return Err(Unclear::Unknown("the bucket name is empty".into()));
            }
            if key.is_empty() {
                bucket_op(req, &query, copy_source, &[b"/", bucket].concat())
            } else {
                object_op(req, &query, copy_source)
            }
        }
        _ if rest.is_empty() => bucket_op(req, &query, copy_source, b"/"),
        _ => object_op(req, &query, copy_source),
    }
}

/// Refuses a request shape with no operation behind it; `place` is where it was aimed ("on an
/// object", "on a bucket", "on the service"). A long query is cut, on a character boundary.
fn unknown(req: &S3Request, place: &str) -> Unclear {
    let mut shape = req.method.to_string();
    if !req.query.is_empty() {
        shape.push_str(" ?");
        let cut = (0..=req.query.len().min(200))
            .rev()
            .find(|&i| req.query.is_char_boundary(i))
            .unwrap_or(0);
        shape.push_str(&req.query[..cut]);
    }
    if req.headers.contains_key("x-amz-copy-source") {
        shape.push_str(" with x-amz-copy-source");
    }
    Unclear::Unknown(format!(
        "{shape} {place} is not an S3 operation sigproxy knows"
    ))
}

/// A canned ACL or an explicit grant: the request sets an ACL besides what it is named for.
fn sets_acl(headers: &HeaderMap) -> bool {
    headers
        .keys()
        .any(|name| name == "x-amz-acl" || name.as_str().starts_with("x-amz-grant-"))
}
