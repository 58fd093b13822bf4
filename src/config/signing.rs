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
use crate::upstream::Upstream;
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
            None => service.default_payload(upstream.tls(), algorithm),
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
            (route("https://example.com", "    service: s3\n"), "routes[0].region: cannot be inferred from upstream host 'example.com'"),
            (route("https://aps-workspaces.eu-west-1.amazonaws.com", "    payload: unsigned\n"), "routes[0].payload: 'unsigned' payloads are for S3 only; aps needs 'signed'"),
        ];
        for (yaml, want) in cases {
            let got = error(&yaml);
            assert!(got.contains(want), "\nwant: {want}\ngot:  {got}");
        }
    }

    #[test]
    fn sigv4a_signs_for_a_region_set_and_is_what_mrap_hosts_take() {
        let route = |upstream: &str, extra: &str| {
            format!("credentials:\n  a: {{}}\nroutes:\n  - upstream: {upstream}\n    credentials: a\n{extra}")
        };
        let signing = |yaml: String| parse(&yaml).unwrap().routes[0].signing.clone().unwrap();
        let v4a = |service: Service, region: &str, payload| SigningConfig {
            service,
            region: region.into(),
            credentials: "a".into(),
            payload,
            algorithm: Algorithm::SigV4a,
        };
        let mrap = "m.mrap.accesspoint.s3-global.amazonaws.com";
        let local = "http://127.0.0.1:9000";
        let cases = [
            (route(&format!("https://{mrap}"), ""), v4a(Service::S3, "*", Payload::Unsigned)),
            (
                route(&format!("https://{mrap}"), "    region_set: [us-east-1, eu-west-1]\n    payload: signed\n"),
                v4a(Service::S3, "us-east-1,eu-west-1", Payload::Signed),
            ),
            // Connected to a stand-in, signed for the MRAP name: SigV4A still, and over plain
            // HTTP the body is hashed whole (no SigV4A chunk signatures).
            (route(local, &format!("    sign_host: {mrap}\n")), v4a(Service::S3, "*", Payload::Signed)),
            (
                route(local, "    signing: sigv4a\n    service: s3\n    region_set: [\"*\"]\n    payload: unsigned\n"),
                v4a(Service::S3, "*", Payload::Unsigned),
            ),
            // Without a region_set, the region the host names.
            (
                route("https://b.s3.eu-west-2.amazonaws.com", "    signing: sigv4a\n"),
                v4a(Service::S3, "eu-west-2", Payload::Unsigned),
            ),
            (
                route("https://abc.execute-api.us-east-1.amazonaws.com", "    signing: sigv4a\n    region_set: [us-east-1, us-west-2]\n"),
                v4a(Service::from("execute-api"), "us-east-1,us-west-2", Payload::Signed),
            ),
        ];
        for (yaml, want) in cases {
            assert_eq!(signing(yaml.clone()), want, "{yaml}");
        }
        let plain = signing(route(
            "https://b.s3.eu-west-2.amazonaws.com",
            "    signing: sigv4\n",
        ));
        assert_eq!(plain.algorithm, Algorithm::SigV4);
        assert_eq!(plain.region, "eu-west-2");
    }

    #[test]
    fn sigv4a_mistakes_name_the_key_and_the_reason() {
        let route = |upstream: &str, extra: &str| {
            format!("credentials:\n  a: {{}}\nroutes:\n  - upstream: {upstream}\n    credentials: a\n{extra}")
        };
        let local = "http://127.0.0.1:9000";
        let s3 = "https://b.s3.eu-west-2.amazonaws.com";
        let mrap = "https://m.mrap.accesspoint.s3-global.amazonaws.com";
        let v4a = "    signing: sigv4a\n    service: s3\n";
        let cases = [
            (route(s3, "    signing: sigv5\n"), "conf/test.yaml: routes[0].signing: unknown signing 'sigv5'; expected sigv4 or sigv4a"),
            (route(s3, "    region_set: [us-east-1]\n"), "routes[0].region_set: is for SigV4A routes (signing: sigv4a)"),
            (route(s3, "    signing: sigv4a\n    region: us-east-1\n"), "routes[0].region: a SigV4A route signs for a set of regions: name them in region_set"),
            (route(local, &format!("{v4a}    region_set: []\n")), "routes[0].region_set: must name at least one region"),
            (route(local, &format!("{v4a}    region_set: [us-east-1, \"*\"]\n")), "routes[0].region_set[1]: '*' already covers every region: list it alone"),
            (route(local, &format!("{v4a}    region_set: [\"US East\"]\n")), "routes[0].region_set[0]: 'US East' is not a region name"),
            (route(local, &format!("{v4a}    region_set: [us-east-1, us-east-1]\n")), "routes[0].region_set[1]: 'us-east-1' is listed twice"),
            (route(local, v4a), "routes[0].region_set: is required with signing: sigv4a, as '127.0.0.1' names no region"),
            (route(local, "    signing: sigv4a\n    region_set: [\"*\"]\n"), "routes[0].upstream: '127.0.0.1' is not an AWS endpoint sigproxy knows; set service"),
            (route(local, &format!("{v4a}    region_set: [\"*\"]\n    payload: streaming\n")), "routes[0].payload: 'streaming' cannot be signed with SigV4A"),
            (route(mrap, "    payload: streaming\n"), "routes[0].payload: 'streaming' cannot be signed with SigV4A"),
            (route(mrap, "    signing: sigv4\n"), "routes[0].signing: 'm.mrap.accesspoint.s3-global.amazonaws.com' is an S3 Multi-Region Access Point, which accepts SigV4A only"),
            ("credentials:\n  a: {}\nroutes:\n  - upstream: http://h\n    region_set: [\"*\"]\n".into(), "routes[0].credentials: is required when service, region, payload, signing or region_set is set"),
        ];
        for (yaml, want) in cases {
            let got = error(&yaml);
            assert!(got.contains(want), "\nwant: {want}\ngot:  {got}");
        }
    }
}
