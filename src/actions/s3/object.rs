//! Object-level operations: plain reads and writes (which methods-only rules may still grant),
//! multipart uploads, and the object sub-resources (which they may not).

use super::query::Query;
use super::{copy, sets_acl, unknown, S3Needs, S3Request, BYPASS};
use crate::actions::{Need, Unclear};
use http::Method;

/// An object operation's shape: what it needs and which refinements it accepts.
struct ObjectOp {
    actions: &'static [&'static str],
    /// Methods-only rules may grant it.
    plain: bool,
    /// Accepts `versionId` (already reflected in `actions`).
    version: bool,
    /// Accepts `partNumber`; `Some(true)`: requires it.
    part: Option<bool>,
    /// Accepts `x-amz-copy-source`.
    copy: bool,
    /// Writes a new object, so ACL, tagging and object-lock headers take effect.
    writes: bool,
    /// Honours `x-amz-bypass-governance-retention`.
    bypass: bool,
}

const OP: ObjectOp = ObjectOp {
    actions: &[],
    plain: false,
    version: false,
    part: None,
    copy: false,
    writes: false,
    bypass: false,
};

/// The object operation for a sub-resource and method; `v`: a `versionId` was given.
fn object_shape(sub: Option<&str>, m: &Method, v: bool) -> Option<ObjectOp> {
    let pick = |plain: &'static [&'static str], versioned: &'static [&'static str]| {
        if v {
            versioned
        } else {
            plain
        }
    };
    let read = *m == Method::GET || *m == Method::HEAD;
    let (get, put, post, delete) = (
        *m == Method::GET,
        *m == Method::PUT,
        *m == Method::POST,
        *m == Method::DELETE,
    );
    let plain = ObjectOp { plain: true, ..OP };
    Some(match sub {
        None if read => ObjectOp {
            actions: pick(&["s3:GetObject"], &["s3:GetObjectVersion"]),
            version: true,
            part: Some(false),
            ..plain
        },
        None if put => ObjectOp {
            actions: &["s3:PutObject"],
            copy: true,
            writes: true,
            ..plain
        },
        // Deleting a version is for good (a plain delete leaves a delete marker): only a rule
        // naming s3:DeleteObjectVersion grants it.
        None if delete => ObjectOp {
            actions: pick(&["s3:DeleteObject"], &["s3:DeleteObjectVersion"]),
            version: true,
            bypass: true,
            plain: !v,
            ..OP
        },
        // CreateMultipartUpload: the upload's object gets its ACL, tags and lock here.
        Some("uploads") if post => ObjectOp {
            actions: &["s3:PutObject"],
            writes: true,
            ..plain
        },
        // UploadPart and UploadPartCopy.
        Some("uploadId") if put => ObjectOp {
            actions: &["s3:PutObject"],
            part: Some(true),
            copy: true,
            ..plain
        },
        // CompleteMultipartUpload.
        Some("uploadId") if post => ObjectOp {
            actions: &["s3:PutObject"],
            ..plain
        },
        Some("uploadId") if delete => ObjectOp {
            actions: &["s3:AbortMultipartUpload"],
            ..plain
        },
        // ListParts.
        Some("uploadId") if get => ObjectOp {
            actions: &["s3:ListMultipartUploadParts"],
            ..plain
        },
        Some(sub) => {
            let actions: &'static [&'static str] = match (sub, m.as_str()) {
                ("acl", "GET") => pick(&["s3:GetObjectAcl"], &["s3:GetObjectVersionAcl"]),
                ("acl", "PUT") => pick(&["s3:PutObjectAcl"], &["s3:PutObjectVersionAcl"]),
                ("tagging", "GET") => {
                    pick(&["s3:GetObjectTagging"], &["s3:GetObjectVersionTagging"])
                }
                ("tagging", "PUT") => {
                    pick(&["s3:PutObjectTagging"], &["s3:PutObjectVersionTagging"])
                }
                ("tagging", "DELETE") => pick(
                    &["s3:DeleteObjectTagging"],
                    &["s3:DeleteObjectVersionTagging"],
                ),
                ("retention", "GET") => &["s3:GetObjectRetention"],
                ("retention", "PUT") => &["s3:PutObjectRetention"],
                ("legal-hold", "GET") => &["s3:GetObjectLegalHold"],
                ("legal-hold", "PUT") => &["s3:PutObjectLegalHold"],
                ("restore", "POST") => &["s3:RestoreObject"],
                ("torrent", "GET") => {
                    pick(&["s3:GetObjectTorrent"], &["s3:GetObjectVersionTorrent"])
                }
                ("attributes", "GET") => pick(
                    &["s3:GetObject", "s3:GetObjectAttributes"],
                    &["s3:GetObjectVersion", "s3:GetObjectVersionAttributes"],
                ),
                // SelectObjectContent reads the object; it takes no versionId.
                ("select", "POST") => {
                    return Some(ObjectOp {
                        actions: &["s3:GetObject"],
                        ..OP
                    })
                }
                _ => return None,
            };
            ObjectOp {
                actions,
                version: true,
                bypass: sub == "retention" && put,
                ..OP
            }
        }
        None => return None,
    })
}

/// An object: the path is its key's path.
pub(super) fn object_op(
    req: &S3Request,
    q: &Query,
    copy: Option<&str>,
) -> Result<S3Needs, Unclear> {
    let m = req.method;
    let Some(op) = object_shape(q.sub_resource, m, q.version_id) else {
        return Err(unknown(req, "on an object"));
    };
    let part_ok = match op.part {
        None => !q.part_number,
        Some(required) => q.part_number || !required,
    };
    if (q.version_id && !op.version) || !part_ok || (copy.is_some() && !op.copy) {
        return Err(unknown(req, "on an object"));
    }
    let path = req.path;
    let plain = op.plain.then(|| m.clone());
    let mut needs: Vec<Need> = op
        .actions
        .iter()
        .map(|a| Need::new(a, path, plain.clone()))
        .collect();
    let h = req.headers;
    let extra = |action: &str| Need::new(action, path, None);
    if op.writes {
        if sets_acl(h) {
            needs.push(extra("s3:PutObjectAcl"));
        }
        if h.contains_key("x-amz-tagging") {
            needs.push(extra("s3:PutObjectTagging"));
        }
        if h.contains_key("x-amz-object-lock-mode")
            || h.contains_key("x-amz-object-lock-retain-until-date")
        {
            needs.push(extra("s3:PutObjectRetention"));
        }
        if h.contains_key("x-amz-object-lock-legal-hold") {
            needs.push(extra("s3:PutObjectLegalHold"));
        }
    }
    if op.bypass && h.contains_key("x-amz-bypass-governance-retention") {
        needs.push(extra(BYPASS));
    }
    if let Some(source) = copy {
        needs.push(copy::source_need(source, req.layout)?);
    }
    Ok(S3Needs::Needs(needs))
}
