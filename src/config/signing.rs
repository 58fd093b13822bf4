//! A route's signing: its credential set, the service and region it signs for, and how the
//! body is covered.
//!
//! Service and region come from the upstream host through [`crate::endpoints`] unless the route
//! names them; a host the table cannot read is an error asking for them, never a guess, since
//! a signature for the wrong service or region fails only once requests are sent.

use super::check::{is_lowercase_name, Checker};
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
    /// `sign_host`: the name signed for, when it is not the upstream's host.
    pub sign_host: Option<String>,
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
        let Named {
            credentials: set,
            service,
            region,
            payload,
            sign_host,
        } = raw;
        let Some(set) = set else {
            if service.is_some() || region.is_some() || payload.is_some() {
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
        let (service, region) =
            self.service_region(key, service, region, upstream, sign_host.as_deref())?;
        if !is_lowercase_name(&region) {
            return self.err(
                format!("{key}.region"),
                format!("'{region}' is not a region name"),
            );
        }
        let payload = match payload.as_deref() {
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
                // aws-sigv4-proxy's --unsigned-payload signs UNSIGNED-PAYLOAD for any service.
                let compat = self.flags && payload == Payload::Unsigned;
                if !service.accepts(payload) && !compat {
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
        sign_host: Option<&str>,
    ) -> Result<(Service, String), ConfigError> {
        // The name signed for is the endpoint's real one: a VPC endpoint or a tunnel may be what
        // is connected to.
        let (host, host_key) = match sign_host {
            Some(h) => (h.split(':').next().unwrap_or(h), "sign_host"),
            None => (upstream.host(), "upstream"),
        };
        let named = match service {
            None => None,
            Some(s) if is_lowercase_name(&s) => Some(Service::from_signing_name(&s)),
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
                self.err(format!("{key}.{host_key}"), format!("'{host}': {why}"))
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
                format!("{key}.{host_key}"),
                format!("'{host}' {why}; set service and region"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;
    use std::path::Path;

    fn parse(yaml: &str) -> Result<Config, ConfigError> {
        Config::parse(yaml, Path::new("conf/test.yaml"))
    }

    fn error(yaml: &str) -> String {
        parse(yaml).unwrap_err().to_string()
    }

    #[test]
    fn service_and_region_come_from_the_endpoint_table_or_the_route() {
        let route = |upstream: &str, extra: &str| {
            format!("credentials:\n  a: {{}}\nroutes:\n  - upstream: {upstream}\n    credentials: a\n{extra}")
        };
        let signing = |yaml: String| {
            let c = parse(&yaml).unwrap();
            let s = c.routes[0].signing.clone().unwrap();
            (s.service, s.region)
        };
        let es = "https://search-logs-abc123.eu-west-3.es.amazonaws.com";
        assert_eq!(
            signing(route(es, "")),
            (Service::from("es"), "eu-west-3".into())
        );
        let aps = "https://aps-workspaces.eu-west-1.amazonaws.com";
        assert_eq!(
            signing(route(aps, "")),
            (Service::from("aps"), "eu-west-1".into())
        );
        // The route's own keys win; a host of AWS's shape still gives the region.
        let named = route(aps, "    service: execute-api\n");
        assert_eq!(
            signing(named),
            (Service::from("execute-api"), "eu-west-1".into())
        );
        let odd = route(
            "https://newsvc.eu-west-1.amazonaws.com",
            "    service: newsvc\n",
        );
        assert_eq!(signing(odd), (Service::from("newsvc"), "eu-west-1".into()));
        let both = route(
            "http://127.0.0.1:9000",
            "    service: s3\n    region: garage\n",
        );
        assert_eq!(signing(both), (Service::S3, "garage".into()));

        let cases = [
            (route("https://foo.example.com", ""), "conf/test.yaml: routes[0].upstream: 'foo.example.com' is not an AWS endpoint sigproxy knows; set service and region"),
            (route("https://newsvc.us-east-1.amazonaws.com", ""), "routes[0].upstream: 'newsvc.us-east-1.amazonaws.com' names the endpoint prefix 'newsvc', which no AWS service model has"),
            (route("https://b--use1-az4--x-s3.s3express-use1-az4.us-east-1.amazonaws.com", "    service: s3\n    region: us-east-1\n"), "routes[0].upstream: 'b--use1-az4--x-s3.s3express-use1-az4.us-east-1.amazonaws.com': S3 Express One Zone endpoints are not supported yet: they authorise requests with session credentials"),
            (route("https://m.mrap.accesspoint.s3-global.amazonaws.com", ""), "routes[0].upstream: 'm.mrap.accesspoint.s3-global.amazonaws.com': S3 Multi-Region Access Points are not supported yet: they need SigV4A"),
            (route("https://example.com", "    service: s3\n"), "routes[0].region: cannot be inferred from upstream host 'example.com'"),
            (route("https://aps-workspaces.eu-west-1.amazonaws.com", "    payload: unsigned\n"), "routes[0].payload: 'unsigned' payloads are for S3 only; aps needs 'signed'"),
        ];
        for (yaml, want) in cases {
            let got = error(&yaml);
            assert!(got.contains(want), "\nwant: {want}\ngot:  {got}");
        }
    }
}
