//! `x-amz-copy-source`: a copy reads its source, so it needs `s3:GetObject` there, or any
//! object could be copied into a prefix the caller may write and then read from it.

use super::BucketLayout;
use crate::actions::{Need, Unclear};
use http::{HeaderMap, Method};
use percent_encoding::percent_decode_str;

/// The one `x-amz-copy-source` header, if any. Two are refused: S3 and this check could each
/// read a different one.
pub(super) fn header(headers: &HeaderMap) -> Result<Option<&str>, Unclear> {
    let mut all = headers.get_all("x-amz-copy-source").iter();
    let Some(value) = all.next() else {
        return Ok(None);
    };
    if all.next().is_some() {
        return Err(Unclear::Ambiguous(
            "x-amz-copy-source is sent more than once".into(),
        ));
    }
    value.to_str().map(Some).map_err(|_| {
        Unclear::Ambiguous("x-amz-copy-source has bytes that are not visible ASCII".into())
    })
}

/// What reading the copy source needs: `s3:GetObject` (`s3:GetObjectVersion` with a
/// `?versionId=`) on the source, as a path in the route's space. Methods-only rules may grant it
/// as `GET`, which is what a copy already needed before actions existed.
///
/// The value is `[/]bucket/key[?versionId=v]`, URL-encoded. A raw `+` or blank is refused: S3
/// might decode `+` as a space (form decoding) or leave it, and a blank may be trimmed on the
/// way, so the key checked here and the key S3 copies could differ.
pub(super) fn source_need(value: &str, layout: &BucketLayout) -> Result<Need, Unclear> {
    if value.bytes().any(|b| matches!(b, b'+' | b' ' | b'\t')) {
        return Err(Unclear::Ambiguous(
            "x-amz-copy-source has a raw '+' or blank: send '+' as %2B and a space as %20".into(),
        ));
    }
    let (source, query) = match value.split_once('?') {
        Some((s, q)) => (s, Some(q)),
        None => (value, None),
    };
    let versioned = match query {
        None => false,
        Some(q) => match q.strip_prefix("versionId=") {
            Some(v) if !v.is_empty() && !v.contains(['&', '=']) => true,
            _ => {
                return Err(Unclear::Unknown(
                    "x-amz-copy-source may carry only '?versionId=…' after the key".into(),
                ))
            }
        },
    };
    let bytes = source.as_bytes();
    let broken_escape = source.match_indices('%').any(|(i, _)| {
        !(bytes.len() > i + 2
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit())
    });
    if broken_escape {
        return Err(Unclear::Ambiguous(
            "x-amz-copy-source has a '%' that is not followed by two hex digits".into(),
        ));
    }
    let decoded: Vec<u8> = percent_decode_str(source).collect();
    let decoded = decoded.strip_prefix(b"/").unwrap_or(&decoded);
    if decoded.starts_with(b"arn:") {
        return Err(Unclear::Unknown(
            "copies from an access point (an arn: copy source) are not supported".into(),
        ));
    }
    let (bucket, key) = match decoded.iter().position(|&b| b == b'/') {
        Some(i) => (&decoded[..i], &decoded[i + 1..]),
        None => (decoded, &b""[..]),
    };
    if bucket.is_empty() || key.is_empty() {
        return Err(Unclear::Unknown(
            "x-amz-copy-source must name a bucket and a key".into(),
        ));
    }
    let path = match layout {
        BucketLayout::PathStyle => [b"/", bucket, b"/", key].concat(),
        BucketLayout::VirtualHosted { bucket: Some(own) } if own.as_bytes() == bucket => {
            [b"/", key].concat()
        }
        BucketLayout::VirtualHosted { bucket: Some(own) } => {
            return Err(Unclear::Unknown(format!(
                "copies from other buckets are not supported on this route, whose paths are \
                 keys in bucket {own}"
            )))
        }
        BucketLayout::VirtualHosted { bucket: None } => {
            return Err(Unclear::Unknown(
                "copies are not supported through an access point upstream".into(),
            ))
        }
        BucketLayout::Unsupported(why) => return Err(Unclear::Unknown(why.clone())),
    };
    let action = if versioned {
        "s3:GetObjectVersion"
    } else {
        "s3:GetObject"
    };
    Ok(Need::new(action, &path, Some(Method::GET)))
}
