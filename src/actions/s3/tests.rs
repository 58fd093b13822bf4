//! One row per S3 operation shape, then the attacks the classification exists to stop.

use super::*;
use http::HeaderValue;

/// Which upstream the row's request goes to.
#[derive(Clone, Copy)]
enum L {
    /// `s3.<region>.amazonaws.com`: `/bucket/key`.
    P,
    /// `my-bucket.s3.<region>.amazonaws.com`: `/key`.
    V,
    /// An access point: `/key`, no bucket.
    A,
}

/// The expected outcome: needs as (action, path, plain method), a DeleteObjects key prefix,
/// or which kind of refusal.
enum W {
    N(&'static [(&'static str, &'static str, Option<&'static str>)]),
    Del(&'static str),
    Amb,
    Unk,
}
use W::{Amb, Del, Unk, N};

type H = &'static [(&'static str, &'static str)];

fn classify_row(l: L, method: &str, path: &str, query: &str, h: H) -> Result<S3Needs, Unclear> {
    let layout = match l {
        L::P => BucketLayout::PathStyle,
        L::V => BucketLayout::VirtualHosted {
            bucket: Some("my-bucket".into()),
        },
        L::A => BucketLayout::VirtualHosted { bucket: None },
    };
    let mut headers = HeaderMap::new();
    for (name, value) in h {
        headers.append(*name, HeaderValue::from_str(value).unwrap());
    }
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    classify(&S3Request {
        method: &method,
        path: path.as_bytes(),
        query,
        headers: &headers,
        layout: &layout,
    })
}

fn check(rows: &[(L, &str, &str, &str, H, W)]) {
    for (l, method, path, query, h, want) in rows {
        let got = classify_row(*l, method, path, query, h);
        let row = format!("{method} {path}?{query} {h:?}: got {got:?}");
        match want {
            N(needs) => {
                let want: Vec<Need> = needs
                    .iter()
                    .map(|(a, p, plain)| {
                        let plain = plain.map(|m| Method::from_bytes(m.as_bytes()).unwrap());
                        Need::new(a, p.as_bytes(), plain)
                    })
                    .collect();
                assert_eq!(got, Ok(S3Needs::Needs(want)), "{row}");
            }
            Del(prefix) => assert!(
                matches!(&got, Ok(S3Needs::DeleteObjects { key_prefix, .. }) if key_prefix == prefix.as_bytes()),
                "{row}"
            ),
            Amb => assert!(matches!(got, Err(Unclear::Ambiguous(_))), "{row}"),
            Unk => assert!(matches!(got, Err(Unclear::Unknown(_))), "{row}"),
        }
    }
}

const NO: H = &[];
const K: &str = "/b/k";

#[test]
#[rustfmt::skip]
fn object_operations() {
    use L::*;
    check(&[
        (P, "GET", K, "", NO, N(&[("s3:GetObject", K, Some("GET"))])),
        (P, "GET", K, "x-id=GetObject&response-content-type=text%2Fplain", NO, N(&[("s3:GetObject", K, Some("GET"))])),
        (P, "HEAD", K, "partNumber=2", NO, N(&[("s3:GetObject", K, Some("HEAD"))])),
        (P, "GET", K, "versionId=3", NO, N(&[("s3:GetObjectVersion", K, Some("GET"))])),
        (P, "HEAD", K, "versionId=3", NO, N(&[("s3:GetObjectVersion", K, Some("HEAD"))])),
        (P, "PUT", K, "", NO, N(&[("s3:PutObject", K, Some("PUT"))])),
        (P, "PUT", K, "x-id=PutObject", &[("x-amz-meta-a", "1"), ("content-md5", "x")], N(&[("s3:PutObject", K, Some("PUT"))])),
        (P, "PUT", K, "", &[("x-amz-acl", "public-read")], N(&[("s3:PutObject", K, Some("PUT")), ("s3:PutObjectAcl", K, None)])),
        (P, "PUT", K, "", &[("x-amz-grant-read", "uri=\"http://acs.amazonaws.com/groups/global/AllUsers\"")], N(&[("s3:PutObject", K, Some("PUT")), ("s3:PutObjectAcl", K, None)])),
        (P, "PUT", K, "", &[("x-amz-tagging", "a=b")], N(&[("s3:PutObject", K, Some("PUT")), ("s3:PutObjectTagging", K, None)])),
        (P, "PUT", K, "", &[("x-amz-object-lock-mode", "GOVERNANCE"), ("x-amz-object-lock-retain-until-date", "2030-01-01T00:00:00Z")], N(&[("s3:PutObject", K, Some("PUT")), ("s3:PutObjectRetention", K, None)])),
        (P, "PUT", K, "", &[("x-amz-object-lock-legal-hold", "ON")], N(&[("s3:PutObject", K, Some("PUT")), ("s3:PutObjectLegalHold", K, None)])),
        (P, "PUT", K, "versionId=3", NO, Unk),
        (P, "PUT", K, "partNumber=1", NO, Unk),
        (P, "DELETE", K, "", NO, N(&[("s3:DeleteObject", K, Some("DELETE"))])),
        (P, "DELETE", K, "versionId=3", NO, N(&[("s3:DeleteObjectVersion", K, None)])),
        (P, "DELETE", K, "versionId=3", &[("x-amz-bypass-governance-retention", "true")], N(&[("s3:DeleteObjectVersion", K, None), ("s3:BypassGovernanceRetention", K, None)])),
        (P, "POST", K, "", NO, Unk),
        (P, "OPTIONS", K, "", NO, Unk),
        // Multipart uploads.
        (P, "POST", K, "uploads", NO, N(&[("s3:PutObject", K, Some("POST"))])),
        (P, "POST", K, "uploads", &[("x-amz-acl", "public-read"), ("x-amz-tagging", "a=b")], N(&[("s3:PutObject", K, Some("POST")), ("s3:PutObjectAcl", K, None), ("s3:PutObjectTagging", K, None)])),
        (P, "PUT", K, "partNumber=1&uploadId=u", NO, N(&[("s3:PutObject", K, Some("PUT"))])),
        (P, "PUT", K, "uploadId=u", NO, Unk),
        (P, "POST", K, "uploadId=u", NO, N(&[("s3:PutObject", K, Some("POST"))])),
        (P, "DELETE", K, "uploadId=u", NO, N(&[("s3:AbortMultipartUpload", K, Some("DELETE"))])),
        (P, "GET", K, "uploadId=u&max-parts=10&part-number-marker=2", NO, N(&[("s3:ListMultipartUploadParts", K, Some("GET"))])),
        (P, "GET", K, "uploads", NO, Unk),
        (P, "POST", K, "uploadId=u&versionId=1", NO, Unk),
        // Sub-resources: only an actions rule grants them.
        (P, "GET", K, "acl", NO, N(&[("s3:GetObjectAcl", K, None)])),
        (P, "GET", K, "acl&versionId=1", NO, N(&[("s3:GetObjectVersionAcl", K, None)])),
        (P, "PUT", K, "acl", NO, N(&[("s3:PutObjectAcl", K, None)])),
        (P, "PUT", K, "acl&versionId=1", &[("x-amz-acl", "private")], N(&[("s3:PutObjectVersionAcl", K, None)])),
        (P, "GET", K, "tagging", NO, N(&[("s3:GetObjectTagging", K, None)])),
        (P, "PUT", K, "tagging&versionId=1", NO, N(&[("s3:PutObjectVersionTagging", K, None)])),
        (P, "DELETE", K, "tagging", NO, N(&[("s3:DeleteObjectTagging", K, None)])),
        (P, "DELETE", K, "tagging&versionId=1", NO, N(&[("s3:DeleteObjectVersionTagging", K, None)])),
        (P, "GET", K, "retention", NO, N(&[("s3:GetObjectRetention", K, None)])),
        (P, "PUT", K, "retention&versionId=1", &[("x-amz-bypass-governance-retention", "true")], N(&[("s3:PutObjectRetention", K, None), ("s3:BypassGovernanceRetention", K, None)])),
        (P, "GET", K, "legal-hold", NO, N(&[("s3:GetObjectLegalHold", K, None)])),
        (P, "PUT", K, "legal-hold", NO, N(&[("s3:PutObjectLegalHold", K, None)])),
        (P, "POST", K, "restore&versionId=1", NO, N(&[("s3:RestoreObject", K, None)])),
        (P, "POST", K, "select&select-type=2", NO, N(&[("s3:GetObject", K, None)])),
        (P, "POST", K, "select&select-type=2&versionId=1", NO, Unk),
        (P, "GET", K, "attributes", NO, N(&[("s3:GetObject", K, None), ("s3:GetObjectAttributes", K, None)])),
        (P, "GET", K, "attributes&versionId=1", NO, N(&[("s3:GetObjectVersion", K, None), ("s3:GetObjectVersionAttributes", K, None)])),
        (P, "GET", K, "torrent", NO, N(&[("s3:GetObjectTorrent", K, None)])),
        (P, "GET", K, "select-type=2", NO, Unk),
        (P, "GET", K, "policy", NO, Unk),
        (P, "PUT", K, "restore", NO, Unk),
        (P, "PUT", K, "renameObject", NO, Unk),
        // A bucket upstream: the path is the key.
        (V, "GET", "/k", "", NO, N(&[("s3:GetObject", "/k", Some("GET"))])),
        (V, "PUT", "/a/b", "acl", NO, N(&[("s3:PutObjectAcl", "/a/b", None)])),
        (A, "DELETE", "/k", "", NO, N(&[("s3:DeleteObject", "/k", Some("DELETE"))])),
        // Keys are literal: `//`, `..` and `?` stay as they are.
        (P, "GET", "/b//../k?", "", NO, N(&[("s3:GetObject", "/b//../k?", Some("GET"))])),
        (V, "GET", "//k", "", NO, N(&[("s3:GetObject", "//k", Some("GET"))])),
    ]);
}

#[test]
#[rustfmt::skip]
fn bucket_and_service_operations() {
    use L::*;
    check(&[
        (P, "GET", "/", "", NO, N(&[("s3:ListAllMyBuckets", "/", None)])),
        (P, "GET", "/", "max-buckets=10&prefix=a", NO, N(&[("s3:ListAllMyBuckets", "/", None)])),
        (P, "PUT", "/", "", NO, Unk),
        (P, "GET", "/", "acl", NO, Unk),
        (P, "GET", "//k", "", NO, Unk),
        (P, "GET", "/b", "", NO, N(&[("s3:ListBucket", "/b", None)])),
        (P, "GET", "/b/", "list-type=2&prefix=a%2F&delimiter=%2F&max-keys=5&continuation-token=t&fetch-owner=true&start-after=x&encoding-type=url", NO, N(&[("s3:ListBucket", "/b", None)])),
        (P, "HEAD", "/b", "", NO, N(&[("s3:ListBucket", "/b", None)])),
        (V, "GET", "/", "prefix=a", NO, N(&[("s3:ListBucket", "/", None)])),
        (P, "GET", "/b", "versions&key-marker=a&version-id-marker=b", NO, N(&[("s3:ListBucketVersions", "/b", None)])),
        (P, "GET", "/b", "uploads&upload-id-marker=u&max-uploads=3", NO, N(&[("s3:ListBucketMultipartUploads", "/b", None)])),
        (P, "PUT", "/b", "", NO, N(&[("s3:CreateBucket", "/b", None)])),
        (P, "PUT", "/b", "", &[("x-amz-acl", "public-read"), ("x-amz-bucket-object-lock-enabled", "true"), ("x-amz-object-ownership", "ObjectWriter")], N(&[("s3:CreateBucket", "/b", None), ("s3:PutBucketAcl", "/b", None), ("s3:PutBucketObjectLockConfiguration", "/b", None), ("s3:PutBucketVersioning", "/b", None), ("s3:PutBucketOwnershipControls", "/b", None)])),
        (P, "DELETE", "/b/", "", NO, N(&[("s3:DeleteBucket", "/b", None)])),
        (P, "POST", "/b", "", NO, Unk),
        (P, "POST", "/b", "delete", NO, Del("/b/")),
        (V, "POST", "/", "delete", NO, Del("/")),
        (P, "GET", "/b", "acl", NO, N(&[("s3:GetBucketAcl", "/b", None)])),
        (P, "PUT", "/b", "acl", &[("x-amz-acl", "private")], N(&[("s3:PutBucketAcl", "/b", None)])),
        (P, "GET", "/b", "policy", NO, N(&[("s3:GetBucketPolicy", "/b", None)])),
        (P, "DELETE", "/b", "policy", NO, N(&[("s3:DeleteBucketPolicy", "/b", None)])),
        (P, "GET", "/b", "policyStatus", NO, N(&[("s3:GetBucketPolicyStatus", "/b", None)])),
        (P, "GET", "/b", "cors", NO, N(&[("s3:GetBucketCORS", "/b", None)])),
        (P, "DELETE", "/b", "cors", NO, N(&[("s3:PutBucketCORS", "/b", None)])),
        (P, "DELETE", "/b", "lifecycle", NO, N(&[("s3:PutLifecycleConfiguration", "/b", None)])),
        (P, "DELETE", "/b", "tagging", NO, N(&[("s3:PutBucketTagging", "/b", None)])),
        (P, "DELETE", "/b", "website", NO, N(&[("s3:DeleteBucketWebsite", "/b", None)])),
        (P, "DELETE", "/b", "encryption", NO, N(&[("s3:PutEncryptionConfiguration", "/b", None)])),
        (P, "GET", "/b", "location", NO, N(&[("s3:GetBucketLocation", "/b", None)])),
        (P, "PUT", "/b", "versioning", NO, N(&[("s3:PutBucketVersioning", "/b", None)])),
        (P, "PUT", "/b", "object-lock", NO, N(&[("s3:PutBucketObjectLockConfiguration", "/b", None)])),
        (P, "DELETE", "/b", "replication", NO, N(&[("s3:PutReplicationConfiguration", "/b", None)])),
        (P, "GET", "/b", "analytics&id=x", NO, N(&[("s3:GetAnalyticsConfiguration", "/b", None)])),
        (P, "DELETE", "/b", "intelligent-tiering&id=x", NO, N(&[("s3:PutIntelligentTieringConfiguration", "/b", None)])),
        (P, "DELETE", "/b", "location", NO, Unk),
        (P, "HEAD", "/b", "acl", NO, Unk),
        (P, "GET", "/b", "versionId=1", NO, Unk),
        (P, "GET", "/b", "session", NO, Unk),
        (P, "GET", "/b", "metadataTable", NO, Unk),
        (P, "POST", "/b", "select&select-type=2", NO, Unk),
    ]);
}

#[test]
#[rustfmt::skip]
fn the_issue_s_attacks_need_actions_no_methods_rule_grants() {
    use L::*;
    check(&[
        (P, "PUT", "/my-bucket/incoming/x", "acl", &[("x-amz-acl", "public-read")], N(&[("s3:PutObjectAcl", "/my-bucket/incoming/x", None)])),
        (P, "PUT", "/my-bucket/incoming/x", "tagging", NO, N(&[("s3:PutObjectTagging", "/my-bucket/incoming/x", None)])),
        (P, "POST", "/my-bucket/incoming/x", "select&select-type=2", NO, N(&[("s3:GetObject", "/my-bucket/incoming/x", None)])),
        (P, "PUT", "/my-bucket/", "policy", NO, N(&[("s3:PutBucketPolicy", "/my-bucket", None)])),
        (P, "GET", "/my-bucket/", "list-type=2", NO, N(&[("s3:ListBucket", "/my-bucket", None)])),
        (P, "DELETE", "/my-bucket/", "publicAccessBlock", NO, N(&[("s3:PutBucketPublicAccessBlock", "/my-bucket", None)])),
        (P, "POST", "/my-bucket/", "delete", NO, Del("/my-bucket/")),
    ]);
}

#[test]
#[rustfmt::skip]
fn queries_fail_closed() {
    use L::*;
    check(&[
        (P, "GET", K, "unknown=1", NO, Unk),
        (P, "GET", K, "ACL", NO, Unk),
        (P, "GET", K, "X-Amz-Signature=abc", NO, Unk),
        // Names are decoded before they are compared.
        (P, "GET", K, "%61cl", NO, N(&[("s3:GetObjectAcl", K, None)])),
        (P, "GET", K, "versionId=1&versionId=2", NO, Amb),
        (P, "GET", K, "prefix=a&prefix=b", NO, Amb),
        (P, "GET", K, "acl&acl", NO, Amb),
        (P, "PUT", K, "acl&tagging", NO, Amb),
        (P, "PUT", K, "uploadId=u&partNumber=1&acl", NO, Amb),
        (P, "GET", K, "&&", NO, N(&[("s3:GetObject", K, Some("GET"))])),
    ]);
}

#[test]
#[rustfmt::skip]
fn copies_need_a_read_of_their_source() {
    use L::*;
    check(&[
        (P, "PUT", K, "", &[("x-amz-copy-source", "src/a%20b")], N(&[("s3:PutObject", K, Some("PUT")), ("s3:GetObject", "/src/a b", Some("GET"))])),
        (P, "PUT", K, "", &[("x-amz-copy-source", "/src/k?versionId=7")], N(&[("s3:PutObject", K, Some("PUT")), ("s3:GetObjectVersion", "/src/k", Some("GET"))])),
        (P, "PUT", K, "", &[("x-amz-copy-source", "src/d%2F..%2Fe%3Fx")], N(&[("s3:PutObject", K, Some("PUT")), ("s3:GetObject", "/src/d/../e?x", Some("GET"))])),
        (P, "PUT", K, "", &[("x-amz-copy-source", "src/k"), ("x-amz-tagging", "a=b")], N(&[("s3:PutObject", K, Some("PUT")), ("s3:PutObjectTagging", K, None), ("s3:GetObject", "/src/k", Some("GET"))])),
        (P, "PUT", K, "partNumber=2&uploadId=u", &[("x-amz-copy-source", "src/k"), ("x-amz-copy-source-range", "bytes=0-9")], N(&[("s3:PutObject", K, Some("PUT")), ("s3:GetObject", "/src/k", Some("GET"))])),
        (V, "PUT", "/k", "", &[("x-amz-copy-source", "my-bucket/a/b")], N(&[("s3:PutObject", "/k", Some("PUT")), ("s3:GetObject", "/a/b", Some("GET"))])),
        (V, "PUT", "/k", "", &[("x-amz-copy-source", "other-bucket/a")], Unk),
        (A, "PUT", "/k", "", &[("x-amz-copy-source", "my-bucket/a")], Unk),
        (P, "PUT", K, "", &[("x-amz-copy-source", "src/a"), ("x-amz-copy-source", "src/b")], Amb),
        (P, "PUT", K, "", &[("x-amz-copy-source", "arn:aws:s3:us-east-1:123456789012:accesspoint/ap/object/k")], Unk),
        (P, "PUT", K, "", &[("x-amz-copy-source", "arn%3Aaws%3As3%3Aus-east-1%3A1%3Aaccesspoint%2Fap%2Fobject%2Fk")], Unk),
        (P, "PUT", K, "", &[("x-amz-copy-source", "src/")], Unk),
        (P, "PUT", K, "", &[("x-amz-copy-source", "src")], Unk),
        (P, "PUT", K, "", &[("x-amz-copy-source", "/k")], Unk),
        (P, "PUT", K, "", &[("x-amz-copy-source", "src/k?versionId=1&x=2")], Unk),
        (P, "PUT", K, "", &[("x-amz-copy-source", "src/k?partNumber=1")], Unk),
        (P, "PUT", K, "", &[("x-amz-copy-source", "src/a+b")], Amb),
        (P, "PUT", K, "", &[("x-amz-copy-source", "src/a b")], Amb),
        (P, "PUT", K, "", &[("x-amz-copy-source", "src/a%2")], Amb),
        (P, "PUT", K, "acl", &[("x-amz-copy-source", "src/k")], Unk),
        (P, "GET", K, "", &[("x-amz-copy-source", "src/k")], Unk),
        (P, "PUT", "/b", "", &[("x-amz-copy-source", "src/k")], Unk),
    ]);
}

#[test]
#[rustfmt::skip]
fn unsupported_endpoints_refuse_everything() {
    let layout = BucketLayout::from_upstream_host("1234.s3-control.us-east-1.amazonaws.com");
    let got = classify(&S3Request {
        method: &Method::GET,
        path: b"/v20180820/accesspoint",
        query: "",
        headers: &HeaderMap::new(),
        layout: &layout,
    });
    assert!(matches!(got, Err(Unclear::Unknown(_))), "{got:?}");
}

#[test]
#[rustfmt::skip]
fn delete_objects_resolves_its_body() {
    let body = b"<Delete><Object><Key>a</Key></Object><Object><Key>b</Key><VersionId>v</VersionId></Object></Delete>";
    let got = classify_row(L::P, "POST", "/b", "delete", &[("x-amz-bypass-governance-retention", "true")])
        .unwrap()
        .resolve(body)
        .unwrap();
    let want = vec![
        Need::new("s3:DeleteObject", b"/b/a", None),
        Need::new("s3:DeleteObjectVersion", b"/b/b", None),
        Need::new("s3:BypassGovernanceRetention", b"/b/a", None),
        Need::new("s3:BypassGovernanceRetention", b"/b/b", None),
    ];
    assert_eq!(got, want);
    let plain = classify_row(L::P, "GET", "/b/k", "", NO).unwrap();
    assert_eq!(plain.resolve(b"ignored").unwrap().len(), 1);
    assert!(classify_row(L::V, "POST", "/", "delete", NO)
        .unwrap()
        .resolve(b"<Delete/>")
        .is_err());
}

#[test]
fn random_requests_never_panic() {
    let methods = ["GET", "HEAD", "PUT", "POST", "DELETE", "PATCH"];
    let paths = ["/", "/b", "/b/", "/b/k", "//", "/b//k", "", "b/k", "/é/é"];
    let params = [
        "acl",
        "uploads",
        "uploadId=u",
        "partNumber=1",
        "versionId=v",
        "delete",
        "select",
        "select-type=2",
        "list-type=2",
        "policy",
        "x",
        "%61cl",
        "é",
        "tagging",
        "",
    ];
    let headers: [(&str, &str); 5] = [
        ("x-amz-copy-source", "b/k"),
        ("x-amz-copy-source", "arn:x"),
        ("x-amz-acl", "public-read"),
        ("x-amz-tagging", "a=b"),
        ("x-amz-bypass-governance-retention", "true"),
    ];
    let mut rng = fastrand::Rng::with_seed(5);
    for _ in 0..20_000 {
        let query: Vec<&str> = (0..rng.usize(0..4))
            .map(|_| params[rng.usize(0..params.len())])
            .collect();
        let mut h = HeaderMap::new();
        for _ in 0..rng.usize(0..3) {
            let (n, v) = headers[rng.usize(0..headers.len())];
            h.append(n, HeaderValue::from_static(v));
        }
        let layout = [
            BucketLayout::PathStyle,
            BucketLayout::VirtualHosted {
                bucket: Some("b".into()),
            },
            BucketLayout::VirtualHosted { bucket: None },
        ][rng.usize(0..3)]
        .clone();
        let method = Method::from_bytes(methods[rng.usize(0..methods.len())].as_bytes()).unwrap();
        let req = S3Request {
            method: &method,
            path: paths[rng.usize(0..paths.len())].as_bytes(),
            query: &query.join("&"),
            headers: &h,
            layout: &layout,
        };
        if let Ok(S3Needs::Needs(needs)) = classify(&req) {
            assert!(!needs.is_empty());
            // Nothing but plain object reads and writes is ever granted by method alone.
            for n in needs.iter().filter(|n| n.plain.is_some()) {
                assert!(
                    [
                        "s3:GetObject",
                        "s3:GetObjectVersion",
                        "s3:PutObject",
                        "s3:DeleteObject",
                        "s3:DeleteObjectVersion",
                        "s3:AbortMultipartUpload",
                        "s3:ListMultipartUploadParts"
                    ]
                    .contains(&n.action.as_str()),
                    "{n:?}"
                );
            }
        }
    }
}
