//! Bucket- and service-level operations. None is a plain object read or write, so only a
//! rule listing the action grants any of them.

use super::query::Query;
use super::{sets_acl, unknown, S3Needs, S3Request};
use crate::actions::{Need, Unclear};
use http::Method;

/// Bucket sub-resources: (sub-resource, method, action). A `DELETE` of a configuration needs
/// the `Put…` action wherever IAM has no `Delete…` one.
#[rustfmt::skip]
const BUCKET_OPS: &[(&str, &str, &str)] = &[
    ("accelerate", "GET", "s3:GetAccelerateConfiguration"),
    ("accelerate", "PUT", "s3:PutAccelerateConfiguration"),
    ("acl", "GET", "s3:GetBucketAcl"),
    ("acl", "PUT", "s3:PutBucketAcl"),
    ("analytics", "GET", "s3:GetAnalyticsConfiguration"),
    ("analytics", "PUT", "s3:PutAnalyticsConfiguration"),
    ("analytics", "DELETE", "s3:PutAnalyticsConfiguration"),
    ("cors", "GET", "s3:GetBucketCORS"),
    ("cors", "PUT", "s3:PutBucketCORS"),
    ("cors", "DELETE", "s3:PutBucketCORS"),
    ("encryption", "GET", "s3:GetEncryptionConfiguration"),
    ("encryption", "PUT", "s3:PutEncryptionConfiguration"),
    ("encryption", "DELETE", "s3:PutEncryptionConfiguration"),
    ("intelligent-tiering", "GET", "s3:GetIntelligentTieringConfiguration"),
    ("intelligent-tiering", "PUT", "s3:PutIntelligentTieringConfiguration"),
    ("intelligent-tiering", "DELETE", "s3:PutIntelligentTieringConfiguration"),
    ("inventory", "GET", "s3:GetInventoryConfiguration"),
    ("inventory", "PUT", "s3:PutInventoryConfiguration"),
    ("inventory", "DELETE", "s3:PutInventoryConfiguration"),
    ("lifecycle", "GET", "s3:GetLifecycleConfiguration"),
    ("lifecycle", "PUT", "s3:PutLifecycleConfiguration"),
    ("lifecycle", "DELETE", "s3:PutLifecycleConfiguration"),
    ("location", "GET", "s3:GetBucketLocation"),
    ("logging", "GET", "s3:GetBucketLogging"),
    ("logging", "PUT", "s3:PutBucketLogging"),
    ("metrics", "GET", "s3:GetMetricsConfiguration"),
    ("metrics", "PUT", "s3:PutMetricsConfiguration"),
    ("metrics", "DELETE", "s3:PutMetricsConfiguration"),
    ("notification", "GET", "s3:GetBucketNotification"),
    ("notification", "PUT", "s3:PutBucketNotification"),
    ("object-lock", "GET", "s3:GetBucketObjectLockConfiguration"),
    ("object-lock", "PUT", "s3:PutBucketObjectLockConfiguration"),
    ("ownershipControls", "GET", "s3:GetBucketOwnershipControls"),
    ("ownershipControls", "PUT", "s3:PutBucketOwnershipControls"),
    ("ownershipControls", "DELETE", "s3:PutBucketOwnershipControls"),
    ("policy", "GET", "s3:GetBucketPolicy"),
    ("policy", "PUT", "s3:PutBucketPolicy"),
    ("policy", "DELETE", "s3:DeleteBucketPolicy"),
    ("policyStatus", "GET", "s3:GetBucketPolicyStatus"),
    ("publicAccessBlock", "GET", "s3:GetBucketPublicAccessBlock"),
    ("publicAccessBlock", "PUT", "s3:PutBucketPublicAccessBlock"),
    ("publicAccessBlock", "DELETE", "s3:PutBucketPublicAccessBlock"),
    ("replication", "GET", "s3:GetReplicationConfiguration"),
    ("replication", "PUT", "s3:PutReplicationConfiguration"),
    ("replication", "DELETE", "s3:PutReplicationConfiguration"),
    ("requestPayment", "GET", "s3:GetBucketRequestPayment"),
    ("requestPayment", "PUT", "s3:PutBucketRequestPayment"),
    ("tagging", "GET", "s3:GetBucketTagging"),
    ("tagging", "PUT", "s3:PutBucketTagging"),
    ("tagging", "DELETE", "s3:PutBucketTagging"),
    ("uploads", "GET", "s3:ListBucketMultipartUploads"),
    ("versioning", "GET", "s3:GetBucketVersioning"),
    ("versioning", "PUT", "s3:PutBucketVersioning"),
    ("versions", "GET", "s3:ListBucketVersions"),
    ("website", "GET", "s3:GetBucketWebsite"),
    ("website", "PUT", "s3:PutBucketWebsite"),
    ("website", "DELETE", "s3:DeleteBucketWebsite"),
];

/// `/` on a path-style upstream: only ListBuckets.
pub(super) fn service(req: &S3Request, q: &Query, copy: Option<&str>) -> Result<S3Needs, Unclear> {
    let plain_list = q.sub_resource.is_none() && !q.version_id && !q.part_number;
    if req.method != Method::GET || !plain_list || copy.is_some() {
        return Err(unknown(req, "on the service"));
    }
    Ok(S3Needs::Needs(vec![Need::new(
        "s3:ListAllMyBuckets",
        b"/",
        None,
    )]))
}

/// A bucket (`/bucket` path-style, `/` on a bucket upstream); `path` is how its needs name it.
pub(super) fn bucket_op(
    req: &S3Request,
    q: &Query,
    copy: Option<&str>,
    path: &[u8],
) -> Result<S3Needs, Unclear> {
    if q.version_id || q.part_number || copy.is_some() {
        return Err(unknown(req, "on a bucket"));
    }
    let m = req.method;
    let h = req.headers;
    let need = |action: &str| Need::new(action, path, None);
    let needs = match q.sub_resource {
        None if *m == Method::GET || *m == Method::HEAD => vec![need("s3:ListBucket")],
        None if *m == Method::DELETE => vec![need("s3:DeleteBucket")],
        None if *m == Method::PUT => {
            let mut needs = vec![need("s3:CreateBucket")];
            if sets_acl(h) {
                needs.push(need("s3:PutBucketAcl"));
            }
            if h.contains_key("x-amz-bucket-object-lock-enabled") {
                needs.push(need("s3:PutBucketObjectLockConfiguration"));
                needs.push(need("s3:PutBucketVersioning"));
            }
            if h.contains_key("x-amz-object-ownership") {
                needs.push(need("s3:PutBucketOwnershipControls"));
            }
            needs
        }
        Some("delete") if *m == Method::POST => {
            let mut key_prefix = path.to_vec();
            if !key_prefix.ends_with(b"/") {
                key_prefix.push(b'/');
            }
            return Ok(S3Needs::DeleteObjects {
                key_prefix,
                bypass_governance_retention: h.contains_key("x-amz-bypass-governance-retention"),
            });
        }
        Some(sub) => match BUCKET_OPS
            .iter()
            .find(|(s, bm, _)| *s == sub && *bm == m.as_str())
        {
            Some((_, _, action)) => vec![need(action)],
            None => return Err(unknown(req, "on a bucket")),
        },
        None => return Err(unknown(req, "on a bucket")),
    };
    Ok(S3Needs::Needs(needs))
}
