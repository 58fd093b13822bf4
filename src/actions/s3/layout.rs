//! Where the bucket is: in the path or in the upstream's host name. The same path means a
//! different resource in each (`/photos` is a bucket on `s3.eu-west-1.amazonaws.com`, a key on
//! `photos.s3.eu-west-1.amazonaws.com`), so classification needs to know.

/// How the upstream addresses buckets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BucketLayout {
    /// `/bucket/key`: regional and global S3 endpoints (`s3.<region>.amazonaws.com`), IP
    /// addresses and every non-AWS host (MinIO, Ceph and the like are configured path-style).
    PathStyle,
    /// The bucket is in the host name and the path is the key. `bucket` is `None` for access
    /// points and Object Lambda access points, whose name is not a bucket's: copies from a
    /// bucket cannot be placed in such a route's space.
    VirtualHosted { bucket: Option<String> },
    /// An S3 endpoint whose requests are not bucket and object operations in the shape
    /// [`super::classify`] knows (S3 Control, S3 Express zonal endpoints): every request is
    /// [`super::Unclear::Unknown`], so an allow list refuses them all.
    Unsupported(String),
}

impl BucketLayout {
    /// Reads the layout from the upstream's host (a port and a trailing dot are ignored).
    ///
    /// AWS hosts end in `.amazonaws.com` or `.amazonaws.com.cn`; the right-most label that is
    /// `s3` or starts with `s3-` names the endpoint (`s3`, `s3-fips`, `s3-us-west-2`,
    /// `s3-accesspoint`, `s3-object-lambda`, `s3-outposts`, `s3-control`; what follows is the
    /// region, `dualstack`, `vpce`), and whatever precedes it is the bucket, which may itself
    /// contain dots. A PrivateLink host (`bucket.vpce-…`, `my-bucket.bucket.vpce-…`) has the endpoint
    /// id and the word `bucket` between the two.
    pub fn from_upstream_host(host: &str) -> BucketLayout {
        let host = host.to_ascii_lowercase();
        let host = strip_port(&host).trim_end_matches('.');
        let Some(rest) = host
            .strip_suffix(".amazonaws.com")
            .or_else(|| host.strip_suffix(".amazonaws.com.cn"))
        else {
            return BucketLayout::PathStyle;
        };
        let labels: Vec<&str> = rest.split('.').collect();
        let Some(at) = labels
            .iter()
            .rposition(|l| *l == "s3" || l.starts_with("s3-") || l.starts_with("s3express"))
        else {
            return BucketLayout::PathStyle;
        };
        let endpoint = labels[at];
        if endpoint.starts_with("s3express") || endpoint.starts_with("s3-control") {
            return BucketLayout::Unsupported(format!(
                "{host} is not a bucket endpoint sigproxy can classify requests for"
            ));
        }
        if ["s3-accesspoint", "s3-object-lambda", "s3-outposts"]
            .iter()
            .any(|p| endpoint.starts_with(p))
        {
            return BucketLayout::VirtualHosted { bucket: None };
        }
        let mut before = &labels[..at];
        if before.last().is_some_and(|l| l.starts_with("vpce-")) {
            before = &before[..before.len() - 1];
            match before.last() {
                Some(&"bucket") => before = &before[..before.len() - 1],
                Some(&"accesspoint") => return BucketLayout::VirtualHosted { bucket: None },
                _ => {
                    return BucketLayout::Unsupported(format!(
                        "{host} is a PrivateLink endpoint sigproxy does not know"
                    ))
                }
            }
        }
        if before.is_empty() {
            BucketLayout::PathStyle
        } else {
            BucketLayout::VirtualHosted {
                bucket: Some(before.join(".")),
            }
        }
    }
}

/// `host:port` or `[v6]:port` without the port.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_once(']').map_or(host, |(h, _)| &h[1..]);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vh(bucket: &str) -> BucketLayout {
        BucketLayout::VirtualHosted {
            bucket: Some(bucket.into()),
        }
    }

    #[test]
    fn layouts_are_read_from_the_host() {
        let ap = BucketLayout::VirtualHosted { bucket: None };
        let cases = [
            ("s3.eu-west-1.amazonaws.com", BucketLayout::PathStyle),
            ("s3.amazonaws.com", BucketLayout::PathStyle),
            ("s3-external-1.amazonaws.com", BucketLayout::PathStyle),
            (
                "s3.dualstack.us-east-1.amazonaws.com",
                BucketLayout::PathStyle,
            ),
            (
                "s3-fips.us-gov-west-1.amazonaws.com",
                BucketLayout::PathStyle,
            ),
            ("s3.cn-north-1.amazonaws.com.cn", BucketLayout::PathStyle),
            ("127.0.0.1", BucketLayout::PathStyle),
            ("[::1]:9000", BucketLayout::PathStyle),
            ("minio.internal:9000", BucketLayout::PathStyle),
            ("my-bucket.s3.eu-west-1.amazonaws.com", vh("my-bucket")),
            ("My-Bucket.S3.eu-west-1.amazonaws.com.", vh("my-bucket")),
            ("my-bucket.s3.amazonaws.com:443", vh("my-bucket")),
            ("my-bucket.s3-us-west-2.amazonaws.com", vh("my-bucket")),
            (
                "my.dotted.bucket.s3.eu-west-1.amazonaws.com",
                vh("my.dotted.bucket"),
            ),
            ("s3.data.s3.eu-west-1.amazonaws.com", vh("s3.data")),
            ("b.s3.dualstack.eu-west-1.amazonaws.com", vh("b")),
            ("b.s3-fips.dualstack.us-east-1.amazonaws.com", vh("b")),
            ("b.s3.cn-north-1.amazonaws.com.cn", vh("b")),
            (
                "ap-123456789012.s3-accesspoint.eu-west-1.amazonaws.com",
                ap.clone(),
            ),
            (
                "ap-1.s3-accesspoint.dualstack.eu-west-1.amazonaws.com",
                ap.clone(),
            ),
            ("ol-1.s3-object-lambda.eu-west-1.amazonaws.com", ap.clone()),
            (
                "ap-1.op-01ac5d28a6a232904.s3-outposts.us-west-2.amazonaws.com",
                ap.clone(),
            ),
            (
                "bucket.vpce-1a2b3c4d-5e6f.s3.us-east-1.vpce.amazonaws.com",
                BucketLayout::PathStyle,
            ),
            (
                "my-bucket.bucket.vpce-1a2b3c4d-5e6f.s3.us-east-1.vpce.amazonaws.com",
                vh("my-bucket"),
            ),
            (
                "accesspoint.vpce-1a2b3c4d-5e6f.s3.us-east-1.vpce.amazonaws.com",
                ap,
            ),
            ("lambda.eu-west-1.amazonaws.com", BucketLayout::PathStyle),
        ];
        for (host, want) in cases {
            assert_eq!(BucketLayout::from_upstream_host(host), want, "{host}");
        }
        for host in [
            "123456789012.s3-control.eu-west-1.amazonaws.com",
            "b--use1-az4--x-s3.s3express-use1-az4.us-east-1.amazonaws.com",
            "control.vpce-1a2b3c4d-5e6f.s3.us-east-1.vpce.amazonaws.com",
        ] {
            assert!(
                matches!(
                    BucketLayout::from_upstream_host(host),
                    BucketLayout::Unsupported(_)
                ),
                "{host}"
            );
        }
    }
}
