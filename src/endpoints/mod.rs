//! Which service and region an AWS endpoint's host name signs for.
//!
//! A signature made for the wrong service or region is refused by AWS, and one made for a guess
//! is worse: it can look right until the guess fails. So a host is read only in the shapes AWS
//! documents, and anything else is an error that asks for `service` and `region`.
//!
//! Two sources: [`table`] holds what botocore publishes (each service model's endpoint prefix →
//! signing name, partitions' DNS suffixes, global endpoints with their credential scope); the
//! rules below hold the shapes that live only in endpoint rules and AWS's documentation (S3's
//! many host forms (Multi-Region Access Points, which sign with SigV4A), Function URLs, OpenSearch domains, API Gateway, PrivateLink).

mod table;

use crate::service::{Algorithm, Service};
use std::fmt;

/// What an upstream host signs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub service: Service,
    /// The region, or with SigV4A the region set (`*`).
    pub region: String,
    /// SigV4 everywhere but on S3 Multi-Region Access Points, which take SigV4A only.
    pub algorithm: Algorithm,
}

/// Why a host says nothing sigproxy can sign with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointError {
    /// Not a host shape AWS documents (or not an AWS host at all).
    Unknown,
    /// An AWS host shape, naming an endpoint prefix no service model has. `region` is the
    /// region the host names, usable when the route names the service itself.
    UnknownService {
        prefix: String,
        region: Option<String>,
    },
    /// An endpoint sigproxy knows and cannot sign for yet; the text says why.
    Unsupported(&'static str),
}

const S3_EXPRESS: &str = "S3 Express One Zone endpoints are not supported yet: they authorise \
    requests with session credentials from CreateSession (x-amz-s3session-token), not SigV4";
const S3_WEBSITE: &str =
    "S3 website endpoints serve anonymous reads only and accept no signature; use the bucket's \
    S3 endpoint";

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointError::Unknown => f.write_str("is not an AWS endpoint sigproxy knows"),
            EndpointError::UnknownService { prefix, .. } => write!(
                f,
                "names the endpoint prefix '{prefix}', which no AWS service model has (as of \
                 botocore {})",
                table::table().botocore
            ),
            EndpointError::Unsupported(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for EndpointError {}

/// Reads the service and region from an upstream host name (any port or trailing dot ignored).
pub fn resolve(host: &str) -> Result<Endpoint, EndpointError> {
    let host = host.to_ascii_lowercase();
    let host = strip_port(&host).trim_end_matches('.');
    // A host name has DNS labels only: anything else (`#`, `/`, `@`, `%`, blanks) could be
    // read as another host once it is part of a URL.
    let plain = host.split('.').all(|label| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    if !plain {
        return Err(EndpointError::Unknown);
    }
    let table = table::table();
    if let Some((signing, region)) = table.global(host) {
        return Ok(endpoint(Service::from_signing_name(signing), region));
    }
    if let Some(rest) = host.strip_suffix(".on.aws") {
        // Lambda Function URLs: `<url-id>.lambda-url.<region>.on.aws`.
        return match rest.split('.').collect::<Vec<_>>()[..] {
            [id, "lambda-url", region] if !id.is_empty() && is_region(region) => {
                Ok(endpoint(Service::Lambda, region))
            }
            _ => Err(EndpointError::Unknown),
        };
    }
    let (suffix, rest) = table
        .suffixes
        .iter()
        .find_map(|suffix| Some((suffix, host.strip_suffix(suffix)?.strip_suffix('.')?)))
        .ok_or(EndpointError::Unknown)?;
    let labels: Vec<&str> = rest.split('.').collect();
    if labels.iter().any(|l| l.is_empty()) {
        return Err(EndpointError::Unknown);
    }
    if let Some(found) = opensearch(&labels) {
        return found;
    }
    if let Some(found) = s3(&labels) {
        // S3's region-less global endpoint (us-east-1) and Multi-Region Access Points are the
        // aws partition's alone.
        let global = found
            .as_ref()
            .is_ok_and(|e| e.region == "us-east-1" || e.algorithm == Algorithm::SigV4a);
        if global && *suffix != "amazonaws.com" {
            return Err(EndpointError::Unknown);
        }
        return found;
    }
    generic(&labels)
}

/// Whether a label is a region name: `us-east-1`, `us-gov-west-1`, `cn-north-1`,
/// `eu-isoe-west-1`, `eusc-de-east-1`. Only labels in this shape are read as regions.
pub fn is_region(label: &str) -> bool {
    let parts: Vec<&str> = label.split('-').collect();
    let letters = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase());
    match parts[..] {
        [area, ref words @ .., number] => {
            (2..=4).contains(&area.len())
                && letters(&area)
                && (1..=3).contains(&words.len())
                && words.iter().all(letters)
                && !number.is_empty()
                && number.bytes().all(|b| b.is_ascii_digit())
        }
        _ => false,
    }
}

fn endpoint(service: Service, region: &str) -> Endpoint {
    Endpoint {
        service,
        region: region.to_string(),
        algorithm: Algorithm::SigV4,
    }
}

fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

/// OpenSearch Service domains (`search-<domain>-<id>.<region>.es`, and `vpc-…` inside a VPC)
/// and OpenSearch Serverless collections (`<id>.<region>.aoss`): the region comes before the
/// service here, unlike everywhere else.
fn opensearch(labels: &[&str]) -> Option<Result<Endpoint, EndpointError>> {
    let [domain, region, service] = labels else {
        return None;
    };
    let service = match *service {
        "es" if domain.starts_with("search-") || domain.starts_with("vpc-") => "es",
        "aoss" => "aoss",
        _ => return None,
    };
    Some(if is_region(region) {
        Ok(endpoint(Service::Other(service.into()), region))
    } else {
        Err(EndpointError::Unknown)
    })
}

/// S3's host forms. The right-most label that is `s3` or starts with `s3-` names the endpoint;
/// what precedes it is a bucket, an access point or a PrivateLink endpoint id, what follows is
/// `[dualstack.]<region>[.vpce]`, or nothing for the us-east-1 global endpoint:
///
/// `s3[.dualstack].<region>`, `<bucket>.s3[.dualstack].<region>`, `s3.amazonaws.com`,
/// `<bucket>.s3-<region>` (legacy), `s3-fips[.dualstack].<region>`,
/// `<ap>-<account>.s3-accesspoint[.dualstack].<region>`,
/// `<ap>-<account>.s3-object-lambda.<region>`, `<ap>-<account>.op-<id>.s3-outposts.<region>`,
/// `<account>.s3-control[.dualstack].<region>`,
/// `{bucket,accesspoint,control}.vpce-<id>.s3.<region>.vpce`.
fn s3(labels: &[&str]) -> Option<Result<Endpoint, EndpointError>> {
    if labels.iter().any(|l| l.starts_with("s3express")) {
        return Some(Err(EndpointError::Unsupported(S3_EXPRESS)));
    }
    if labels.contains(&"s3-global") {
        // Multi-Region Access Points: `<alias>.mrap.accesspoint.s3-global`, signed with SigV4A
        // for every region (a request may be routed to any of the point's buckets).
        return Some(match labels {
            [alias, "mrap", "accesspoint", "s3-global"] if !alias.is_empty() => Ok(Endpoint {
                service: Service::S3,
                region: "*".into(),
                algorithm: Algorithm::SigV4a,
            }),
            _ => Err(EndpointError::Unknown),
        });
    }
    let at = labels
        .iter()
        .rposition(|l| *l == "s3" || l.starts_with("s3-"))?;
    let name = labels[at];
    if name.starts_with("s3-website") {
        return Some(Err(EndpointError::Unsupported(S3_WEBSITE)));
    }
    let (service, regionless) = match name {
        "s3" => (Service::S3, true),
        "s3-fips" | "s3-accesspoint" | "s3-control" => (Service::S3, false),
        "s3-object-lambda" => (Service::S3ObjectLambda, false),
        "s3-outposts" => (Service::S3Outposts, false),
        "s3-external-1" => return Some(Ok(endpoint(Service::S3, "us-east-1"))),
        legacy => match legacy.strip_prefix("s3-") {
            Some(region) if is_region(region) && at + 1 == labels.len() => {
                return Some(Ok(endpoint(Service::S3, region)))
            }
            _ => return Some(Err(EndpointError::Unknown)),
        },
    };
    let mut after = &labels[at + 1..];
    if let [rest @ .., "vpce"] = after {
        // PrivateLink: the label before `s3` is the endpoint id.
        let private = at >= 1 && labels[at - 1].starts_with("vpce-") && name == "s3";
        if !private {
            return Some(Err(EndpointError::Unknown));
        }
        after = rest;
    }
    let after = after.strip_prefix(&["dualstack"]).unwrap_or(after);
    Some(match after {
        [] if regionless => Ok(endpoint(service, "us-east-1")),
        [region] if is_region(region) => Ok(endpoint(service, region)),
        _ => Err(EndpointError::Unknown),
    })
}

/// Host prefixes that AWS serves a service on besides its model's `endpointPrefix` (they come
/// from endpoint rules and `hostPrefix` traits, which the table does not carry).
const HOST_PREFIXES: &[(&str, &str)] = &[
    // Amazon Managed Service for Prometheus workspaces (remote write, queries).
    ("aps-workspaces", "aps"),
];

/// Everything else: `<prefix>.<region>`, `<prefix>-fips.<region>`, the ids some services put
/// before their prefix (`<api-id>.execute-api`, `<account>.ddb`, `<id>.appsync-api`,
/// `<id>-ats.iot`), and PrivateLink's `vpce-<id>.<prefix>.<region>.vpce`.
fn generic(labels: &[&str]) -> Result<Endpoint, EndpointError> {
    let (labels, private) = match labels {
        [id, rest @ .., "vpce"] if id.starts_with("vpce-") => (rest, true),
        [.., "vpce"] => return Err(EndpointError::Unknown),
        _ => (labels, false),
    };
    let [prefix @ .., region] = labels else {
        return Err(EndpointError::Unknown);
    };
    if prefix.is_empty() || !is_region(region) {
        return Err(EndpointError::Unknown);
    }
    // A service's own id label in front of its prefix (not behind PrivateLink, whose own id
    // label was taken off above).
    let by_id = match prefix {
        [_, "execute-api"] => Some("execute-api"),
        [_, "ddb"] => Some("dynamodb"),
        [_, "appsync-api"] => Some("appsync"),
        [id, "iot"] if id.ends_with("-ats") => Some("iotdata"),
        _ => None,
    };
    if let Some(signing) = by_id.filter(|_| !private) {
        return Ok(endpoint(Service::from_signing_name(signing), region));
    }
    let prefix = prefix.join(".");
    match signing_name(&prefix) {
        Some(signing) => Ok(endpoint(Service::from_signing_name(signing), region)),
        None => Err(EndpointError::UnknownService {
            prefix,
            region: Some(region.to_string()),
        }),
    }
}

/// The signing name of a host's endpoint prefix: the model's own, a known host prefix, or the
/// FIPS variant's (`{service}-fips.{region}`, every partition's documented FIPS host form).
fn signing_name(prefix: &str) -> Option<&'static str> {
    let known = |p: &str| {
        table::table()
            .signing_name(p)
            .or_else(|| HOST_PREFIXES.iter().find(|(h, _)| *h == p).map(|(_, s)| *s))
    };
    known(prefix).or_else(|| known(prefix.strip_suffix("-fips")?))
}

#[cfg(test)]
mod tests;
