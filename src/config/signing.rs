//! A route's signing: its credential set, the service and region it signs for, and how the
//! body is covered.
//!
//! Service and region come from the upstream host through [`crate::endpoints`] unless the route
//! names them; a host the table cannot read is an error asking for them, never a guess, since
//! a signature for the wrong service or region fails only once requests are sent.

use super::check::{valid_region, Checker};
use super::{ConfigError, CredentialsConfig, Payload, SigningConfig};
use crate::endpoints::{self, EndpointError};
use crate::service::Service;
use crate::upstream::Upstream;
use std::collections::BTreeMap;

/// What a route's own keys say about its signing.
pub(super) struct Named {
    pub credentials: Option<String>,
    pub service: Option<String>,
    pub region: Option<String>,
    pub payload: Option<String>,
}

impl Checker<'_> {
    /// The signing of route `key` (`routes[i]`); `None` for a pass-through route.
    pub(super) fn signing(
        &self,
        key: &str,
        raw: Named,
        upstream: &Upstream,
        credentials: &BTreeMap<String, CredentialsConfig>,
    ) -> Result<Option<SigningConfig>, ConfigError> {
        let Some(set) = raw.credentials else {
            if raw.service.is_some() || raw.region.is_some() || raw.payload.is_some() {
                return self.err(
                    format!("{key}.credentials"),
                    "is required when service, region or payload is set; without it the route forwards unsigned",
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
        let (service, region) = self.service_region(key, raw.service, raw.region, upstream)?;
        if !valid_region(&region) {
            return self.err(
                format!("{key}.region"),
                format!("'{region}' is not a region name"),
            );
        }
        let payload = match raw.payload.as_deref() {
            None => service.default_payload(upstream.tls()),
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
                if !service.accepts(payload) {
                    return self.err(
                        format!("{key}.payload"),
                        format!("'{name}' payloads are for S3 only; {service} needs 'signed'"),
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
        }))
    }

    /// The service and region: the route's own, else what the upstream host says.
    fn service_region(
        &self,
        key: &str,
        service: Option<String>,
        region: Option<String>,
        upstream: &Upstream,
    ) -> Result<(Service, String), ConfigError> {
        let host = upstream.host();
        let named = match service {
            None => None,
            Some(s) if is_signing_name(&s) => Some(Service::from_signing_name(&s)),
            Some(s) => {
                return self.err(
                    format!("{key}.service"),
                    format!("'{s}' is not an AWS signing name such as lambda"),
                )
            }
        };
        let found = endpoints::resolve(host);
        match (named, region, found) {
            // Signing cannot work there whatever the route says.
            (_, _, Err(why @ EndpointError::Unsupported(_))) => {
                self.err(format!("{key}.upstream"), format!("'{host}': {why}"))
            }
            (Some(service), Some(region), _) => Ok((service, region)),
            (service, region, Ok(endpoint)) => Ok((
                service.unwrap_or(endpoint.service),
                region.unwrap_or(endpoint.region),
            )),
            // The route names the service; a host of AWS's shape still names the region.
            (
                Some(service),
                None,
                Err(EndpointError::UnknownService {
                    region: Some(region),
                    ..
                }),
            ) => Ok((service, region)),
            (Some(_), None, Err(_)) => self.err(
                format!("{key}.region"),
                format!("cannot be inferred from upstream host '{host}'; set it (e.g. us-east-1)"),
            ),
            (None, _, Err(why)) => self.err(
                format!("{key}.upstream"),
                format!("'{host}' {why}; set service and region"),
            ),
        }
    }
}

/// Signing names are lowercase words joined by `-` (`execute-api`, `s3-object-lambda`).
fn is_signing_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}
