//! The query's say in the operation: which sub-resource it names, and whether it refines it
//! with a `versionId` or `partNumber`. Every other parameter must be a known harmless one.

use crate::actions::{query_params, Unclear};

/// Query parameters that select an operation: S3's sub-resources.
const SUB_RESOURCES: &[&str] = &[
    "accelerate",
    "acl",
    "analytics",
    "attributes",
    "cors",
    "delete",
    "encryption",
    "intelligent-tiering",
    "inventory",
    "legal-hold",
    "lifecycle",
    "location",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "ownershipControls",
    "policy",
    "policyStatus",
    "publicAccessBlock",
    "replication",
    "requestPayment",
    "restore",
    "retention",
    "select",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versioning",
    "versions",
    "website",
];

/// Parameters that shape a listing or a response but do not change the operation (`versionId`,
/// `partNumber` and `select-type` are handled apart).
const HARMLESS: &[&str] = &[
    "x-id",
    "prefix",
    "delimiter",
    "marker",
    "max-keys",
    "list-type",
    "continuation-token",
    "fetch-owner",
    "start-after",
    "encoding-type",
    "key-marker",
    "version-id-marker",
    "upload-id-marker",
    "max-uploads",
    "max-parts",
    "part-number-marker",
    "max-buckets",
    "bucket-region",
    "id",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
];

/// What the query says: the one sub-resource, and the parameters that refine it.
#[derive(Debug, Default)]
pub(super) struct Query {
    pub sub_resource: Option<&'static str>,
    pub version_id: bool,
    pub part_number: bool,
}

pub(super) fn read_query(query: &str) -> Result<Query, Unclear> {
    let params = query_params(query)?;
    let mut q = Query::default();
    let mut select_type = false;
    for (i, (name, _)) in params.iter().enumerate() {
        if params[..i].iter().any(|(earlier, _)| earlier == name) {
            return Err(Unclear::Ambiguous(format!(
                "the query parameter '{name}' is repeated"
            )));
        }
        match name.as_str() {
            "versionId" => q.version_id = true,
            "partNumber" => q.part_number = true,
            "select-type" => select_type = true,
            n if HARMLESS.contains(&n) => {}
            n => {
                let Some(&sub) = SUB_RESOURCES.iter().find(|s| **s == n) else {
                    return Err(Unclear::Unknown(format!(
                        "the query parameter '{n}' is not one sigproxy knows"
                    )));
                };
                if let Some(first) = q.sub_resource {
                    return Err(Unclear::Ambiguous(format!(
                        "the query names two operations, '{first}' and '{sub}'"
                    )));
                }
                q.sub_resource = Some(sub);
            }
        }
    }
    if select_type && q.sub_resource != Some("select") {
        return Err(Unclear::Unknown("'select-type' without 'select'".into()));
    }
    Ok(q)
}
