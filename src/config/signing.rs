//! A route's signing: its credential set, the service and region it signs for, and how the
//! body is covered.
//!
//! Service and region come from the upstream host through [`crate::endpoints`] unless the route
//! names them; a host the table cannot read is an error asking for them, never a guess, since
//! a signature for the wrong service or region fails only once requests are sent.
//!
//! The algorithm is SigV4 unless the route says `signing: sigv4a` (with a `region_set`) or the
//! host is an S3 Multi-Region Access Point, which takes SigV4A for every region (`*`).

use super::check::{is_lowercase_name, Checker};
use super::{Algorithm, ConfigError, CredentialsConfig, Payload, SigningConfig};
use crate::endpoints::{self, Endpoint, EndpointError};
use crate::service::Service;
use crate::upstream::{Upstream, UpstreamTls};
use std::collections::BTreeMap;

/// What a route's own keys say about its signing.
pub(super) struct Named {
    pub credentials: Option<String>,
    pub service: Option<String>,
    pub region: Option<String>,
    pub payload: Option<String>,
    /// `signing`: `sigv4` or `sigv4a`.
    pub signing: Option<String>,
    /// `region_set`: with SigV4A, the regions the signature is valid in.
    pub region_set: Option<Vec<String>>,
    /// `sign_host`: the name signed for, when it is not the upstream's host.
    pub sign_host: Option<String>,
}

/// The host signed for, the key that named it, and what the endpoint table reads from it.
struct Host<'a> {
    name: &'a str,
    key: &'static str,
    found: Result<Endpoint, EndpointError>,
}

impl Checker<'_> {
    /// The signing of route `key` (`routes[i]`); `None` for a pass-through route.
    pub(super) fn signing(
        &self,
        key: &str,
        raw: Named,
        upstream: &Upstream,
        tls: &UpstreamTls,
        credentials: &BTreeMap<String, CredentialsConfig>,
    ) -> Result<Option<SigningConfig>, ConfigError> {
        let Named {
            credentials: set,
            service,
            region,
            payload,
            signing,
            region_set,
            sign_host,
        } = raw;
        let Some(set) = set else {
            let named = [
                service.is_some(),
                region.is_some(),
                payload.is_some(),
                signing.is_some(),
                region_set.is_some(),
            ];
            if named.contains(&true) {
                return self.err(
                    format!("{key}.credentials"),
                    "is required when service, region, payload, signing or region_set is set; without it the route forwards unsigned",
                );
            }
            return Ok(None);
        };
        if !credentials.contains_key(&set) {
            return self.err(
                format!("{key}.credentials"),
                format!("no credential set named '{set}' under `credentials`"),
            );
        }
        // The name signed for is the endpoint's real one: a VPC endpoint or a tunnel may be what
        // is connected to.
        let host = match sign_host.as_deref() {
            Some(h) => h.split(':').next().unwrap_or(h),
            None => upstream.host(),
        };
        let host = Host {
            name: host,
            key: if sign_host.is_some() {
                "sign_host"
            } else {
                "upstream"
            },
            found: endpoints::resolve(host),
        };
        // Signing cannot work there whatever the route says.
        if let Err(why @ EndpointError::Unsupported(_)) = &host.found {
            return self.err(
                format!("{key}.{}", host.key),
                format!("'{}': {why}", host.name),
            );
        }
        let algorithm = self.algorithm(key, signing.as_deref(), &host)?;
        let (service, region) = match algorithm {
            Algorithm::SigV4 => {
                if region_set.is_some() {
                    return self.err(
                        format!("{key}.region_set"),
                        "is for SigV4A routes (signing: sigv4a); a SigV4 route names one region",
                    );
                }
                self.service_region(key, service, region, host)?
            }
            Algorithm::SigV4a => {
                if region.is_some() {
                    return self.err(
                        format!("{key}.region"),
                        "a SigV4A route signs for a set of regions: name them in region_set (e.g. [\"*\"] or [us-east-1, us-west-2])",
                    );
                }
                let service = self.service(key, service)?;
                let set = self.region_set(key, region_set, &host)?;
                match (service, host.found) {
                    (Some(service), _) => (service, set),
                    (None, Ok(endpoint)) => (endpoint.service, set),
                    (None, Err(why)) => {
                        return self.err(
                            format!("{key}.{}", host.key),
                            format!("'{}' {why}; set service", host.name),
                        )
                    }
                }
            }
        };
        let payload = match payload.as_deref() {
            // TLS protects an unsigned body only when the upstream's certificate is checked.
            None => {
                let verified = upstream.tls() && !tls.insecure_skip_verify;
                service.default_payload(verified, algorithm)
            }
            Some(name) => {
                let payload = match name {
                    "signed" => Payload::Signed,
                    "unsigned" => Payload::Unsigned,
                    "streaming" => Payload::Streaming,
                    other => {
                        return self.err(
                            format!("{key}.payload"),
                            format!("unknown payload mode '{other}'; expected signed, unsigned or streaming"),
                        )
                    }
                };
                // aws-sigv4-proxy's --unsigned-payload signs UNSIGNED-PAYLOAD for any service.
                let compat = self.flags && payload == Payload::Unsigned;
                if !service.accepts(payload) && !compat {
                    return self.err(
                        format!("{key}.payload"),
                        format!("'{name}' payloads are for S3 only; {service} needs 'signed'"),
                    );
                }
                if payload == Payload::Streaming && !algorithm.signs_chunks() {
                    return self.err(
                        format!("{key}.payload"),
                        "'streaming' cannot be signed with SigV4A: sigproxy signs aws-chunked \
                         bodies with SigV4 only (aws-sigv4 has no \
                         STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD); use 'signed', or \
                         'unsigned' over HTTPS",
                    );
                }
                payload
            }
        };
        Ok(Some(SigningConfig {
            service,
            region,
            credentials: set,
            payload,
            algorithm,
        }))
    }

    /// The route's `signing`, else what the host takes: SigV4A for Multi-Region Access
    /// Points, SigV4 everywhere else.
    fn algorithm(
        &self,
        key: &str,
        signing: Option<&str>,
        host: &Host,
    ) -> Result<Algorithm, ConfigError> {
        let required = host.found.as_ref().ok().map(|e| e.algorithm);
        let algorithm = match signing {
            None => return Ok(required.unwrap_or(Algorithm::SigV4)),
            Some("sigv4") => Algorithm::SigV4,
            Some("sigv4a") => Algorithm::SigV4a,
            Some(other) => {
                return self.err(
                    format!("{key}.signing"),
                    format!("unknown signing '{other}'; expected sigv4 or sigv4a"),
                )
            }
        };
        if required == Some(Algorithm::SigV4a) && algorithm != Algorithm::SigV4a {
            return self.err(
                format!("{key}.signing"),
                format!(
                    "'{}' is an S3 Multi-Region Access Point, which accepts SigV4A only; \
                     drop signing or set it to sigv4a",
                    host.name
                ),
            );
        }
        Ok(algorithm)
    }

    /// The route's `service`, checked.
    fn service(&self, key: &str, service: Option<String>) -> Result<Option<Service>, ConfigError> {
        match service {
            None => Ok(None),
            Some(s) if is_lowercase_name(&s) => Ok(Some(Service::from_signing_name(&s))),
            Some(s) => self.err(
                format!("{key}.service"),
                format!("'{s}' is not an AWS signing name such as lambda"),
            ),
        }
    }

    /// A SigV4A route's region set as `X-Amz-Region-Set` carries it: the route's `region_set`,
    /// else the region the host names (`*` for a Multi-Region Access Point).
    fn region_set(
        &self,
        key: &str,
        listed: Option<Vec<String>>,
        host: &Host,
    ) -> Result<String, ConfigError> {
        let key = format!("{key}.region_set");
        let Some(listed) = listed else {
            return match &host.found {
                Ok(endpoint) => Ok(endpoint.region.clone()),
                Err(_) => self.err(
                    key,
                    format!(
                        "is required with signing: sigv4a, as '{}' names no region \
                         (e.g. [\"*\"] or [us-east-1, us-west-2])",
                        host.name
                    ),
                ),
            };
        };
        if listed.is_empty() {
            return self.err(key, "must name at least one region, or \"*\" for all");
        }
        for (i, region) in listed.iter().enumerate() {
            let wildcard = region == "*";
            if wildcard && listed.len() > 1 {
                return self.err(
                    format!("{key}[{i}]"),
                    "'*' already covers every region: list it alone",
                );
            }
            if !wildcard && !is_lowercase_name(region) {
                return self.err(
                    format!("{key}[{i}]"),
                    format!("'{region}' is not a region name (or \"*\")"),
                );
            }
            if listed[..i].contains(region) {
                return self.err(format!("{key}[{i}]"), format!("'{region}' is listed twice"));
            }
        }
        Ok(listed.join(","))
    }

    /// A SigV4 route's service and region: the route's own, else what the upstream host says.
    fn service_region(
        &self,
        key: &str,
        service: Option<String>,
        region: Option<String>,
        host: Host,
    ) -> Result<(Service, String), ConfigError> {
        let named = self.service(key, service)?;
        let (service, region) = match (named, region, host.found) {
            (Some(service), Some(region), _) => (service, region),
            (service, region, Ok(endpoint)) => (
                service.unwrap_or(endpoint.service),
                region.unwrap_or(endpoint.region),
            ),
            // The route names the service; a host of AWS's shape still names the region.
            (
                Some(service),
                None,
                Err(EndpointError::UnknownService {
                    region: Some(region),
                    ..
                }),
            ) => (service, region),
            (Some(_), None, Err(_)) => {
                return self.err(
                    format!("{key}.region"),
                    format!(
                        "cannot be inferred from upstream host '{}'; set it (e.g. us-east-1)",
                        host.name
                    ),
                )
            }
            (None, _, Err(why)) => {
                return self.err(
                    format!("{key}.{}", host.key),
                    format!("'{}' {why}; set service and region", host.name),
                )
            }
        };
        if !is_lowercase_name(&region) {
            return self.err(
                format!("{key}.region"),
                format!("'{region}' is not a region name"),
            );
        }
        Ok((service, region))
    }
}

#[cfg(test)]
#[path = "signing_tests.rs"]
mod tests;
