//! `upstream_from_host`: a route whose upstream is the request's own `Host`, as aws-sigv4-proxy
//! works without `--host`. Only AWS endpoints ([`crate::endpoints::resolve`] knows the name) and
//! hosts the operator lists are served; anything else is refused before a byte is sent, so
//! sigproxy is never an open relay that signs for whatever a client names.
//!
//! The route's keys are checked once at start, and again for each host with the same
//! [`Checker`], so a host signs exactly as a route naming it as `upstream` would.

use super::check::{word_char, Checker};
use super::signing::Named;
use super::{file, ConfigError, CredentialsConfig, RouteConfig};
use crate::access::browser::host_name;
use crate::upstream::{Upstream, UpstreamTls};
use std::collections::BTreeMap;
use std::path::Path;

/// Where the placeholder `upstream` of a from-host route points; never connected to.
const PLACEHOLDER: &str = "https://upstream-from-host.invalid";

/// A from-host route's settings, kept to settle each host's signing.
#[derive(Debug, Clone)]
pub struct FromHost {
    /// `https` or `http`.
    pub scheme: &'static str,
    /// Listed hosts: lower case, without trailing dot; `name` or `name:port`.
    pub allowed_hosts: Vec<String>,
    credentials: String,
    service: Option<String>,
    region: Option<String>,
    payload: Option<String>,
    signing: Option<String>,
    region_set: Option<Vec<String>>,
    /// Built from aws-sigv4-proxy's flags (an unsigned payload is allowed for any service).
    flags: bool,
    credential_sets: BTreeMap<String, CredentialsConfig>,
}

impl FromHost {
    /// The credential set every host is signed with.
    pub fn credentials(&self) -> &str {
        &self.credentials
    }

    /// How every host of the route is signed, for the signing check.
    fn named(&self) -> Named {
        Named {
            credentials: Some(self.credentials.clone()),
            service: self.service.clone(),
            region: self.region.clone(),
            payload: self.payload.clone(),
            signing: self.signing.clone(),
            region_set: self.region_set.clone(),
            sign_host: None,
        }
    }

    /// What `--check` says of the route: where requests go and how they are signed.
    pub fn describe(&self) -> String {
        let mut hosts = Vec::new();
        if self.serves_aws_endpoints() {
            hosts.push("AWS endpoints");
        }
        hosts.extend(self.allowed_hosts.iter().map(String::as_str));
        let hosts = hosts.join(", ");
        let from_host = "from the Host";
        let signing = match (&self.signing, &self.region_set) {
            (None, None) => String::new(),
            (signing, set) => format!(
                " signing={} region_set={}",
                signing.as_deref().unwrap_or("sigv4"),
                set.as_ref().map_or(from_host.to_string(), |s| s.join(","))
            ),
        };
        format!(
            "{}://<Host: {hosts}> service={} region={}{signing} payload={} credentials={}",
            self.scheme,
            self.service.as_deref().unwrap_or(from_host),
            self.region.as_deref().unwrap_or(from_host),
            self.payload.as_deref().unwrap_or("signed"),
            self.credentials
        )
    }

    /// The upstream a request's `Host` names, if it is served: `scheme://host` (with the port
    /// only when a listed entry names it). `None`: not an AWS endpoint and not listed.
    pub fn upstream_for(&self, host: &str) -> Option<String> {
        let name = host_name(host);
        // Only a plain DNS name (or a listed name with a port) can become a URL's host: `#`,
        // `/`, `@`, `[`, `%` and the like would make the URL's host something else entirely
        // (`127.0.0.1#.s3.amazonaws.com` is 127.0.0.1), an open relay.
        if !is_dns_name(&name) {
            return None;
        }
        let with_port = host.trim().to_ascii_lowercase();
        if with_port.contains(':') && !is_host_port(&with_port) {
            return None;
        }
        if self.allowed_hosts.contains(&with_port) && with_port.contains(':') {
            return Some(format!("{}://{with_port}", self.scheme));
        }
        if self.allowed_hosts.contains(&name)
            || (self.serves_aws_endpoints() && crate::endpoints::resolve(&name).is_ok())
        {
            return Some(format!("{}://{name}", self.scheme));
        }
        None
    }

    /// Whether a Host naming an AWS endpoint is served: over https only. Over plain http a
    /// signed request, its session token and the answer would cross the network in clear text;
    /// such a route serves only the hosts it lists (a local endpoint, a test double).
    pub fn serves_aws_endpoints(&self) -> bool {
        self.scheme == "https"
    }

    /// The host names (without port) this route serves by name, for the `Host` check.
    pub fn listed_names(&self) -> impl Iterator<Item = String> + '_ {
        self.allowed_hosts.iter().map(|h| host_name(h))
    }
}

impl RouteConfig {
    /// This from-host route settled for one request `host`: its upstream and signing, checked
    /// as a route naming that upstream would be. `None` if the host is not served; an error
    /// (for the log) if it is but cannot be signed for.
    pub fn for_host(&self, host: &str) -> Option<Result<RouteConfig, ConfigError>> {
        let from = self.from_host.as_ref()?;
        let url = from.upstream_for(host)?;
        Some(settle(self, from, &url))
    }
}

/// Letters, digits, `-`, `_` and dots between non-empty labels: nothing a URL reads as
/// anything but a host name.
fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty() && label.len() <= 63 && label.chars().all(|c| word_char(c, "-_"))
        })
}

/// `name:port`, with a plain DNS name and a numeric port.
fn is_host_port(text: &str) -> bool {
    text.rsplit_once(':')
        .is_some_and(|(name, port)| is_dns_name(name) && port.parse::<u16>().is_ok())
}

fn settle(template: &RouteConfig, from: &FromHost, url: &str) -> Result<RouteConfig, ConfigError> {
    let checker = Checker {
        path: Path::new("request Host"),
        flags: from.flags,
        kept: None,
    };
    let upstream = Upstream::parse(url).or_else(|why| checker.err("upstream", why))?;
    // The URL must name exactly the host it was made from, and nothing more.
    let asked = url.split_once("://").map_or(url, |(_, rest)| rest);
    if !upstream.base_path().is_empty()
        || !(upstream.authority() == asked || upstream.host() == asked)
    {
        return checker.err("upstream", format!("'{asked}' is not a plain host name"));
    }
    let named = from.named();
    let signing = checker.signing(
        "upstream",
        named,
        &upstream,
        &template.tls,
        &from.credential_sets,
    )?;
    Ok(RouteConfig {
        upstream,
        signing,
        from_host: None,
        ..template.clone()
    })
}

/// The keys of a route that `upstream_from_host` excludes, and whether each is set.
pub(super) struct Excluded {
    pub upstream: bool,
    pub sign_host: bool,
    pub s3_addressing: bool,
    pub allow: bool,
    pub match_host: bool,
}

impl Checker<'_> {
    /// A route's `upstream_from_host`, with the keys it excludes; returns the placeholder
    /// upstream and the settings. `key` is the route's key (`routes[0]`), `named` its signing
    /// keys.
    pub(super) fn upstream_from_host(
        &self,
        key: &str,
        raw: Option<file::UpstreamFromHost>,
        named: &Named,
        excluded: Excluded,
        credentials: &BTreeMap<String, CredentialsConfig>,
    ) -> Result<Option<(Upstream, FromHost)>, ConfigError> {
        let Some(file::UpstreamFromHost {
            scheme,
            allowed_hosts: listed,
        }) = raw
        else {
            return Ok(None);
        };
        let key = format!("{key}.upstream_from_host");
        let Excluded {
            upstream,
            sign_host,
            s3_addressing,
            allow,
            match_host,
        } = excluded;
        for (set, what) in [
            (upstream, "upstream"),
            (sign_host, "sign_host"),
            (s3_addressing, "s3_addressing"),
            (allow, "allow"),
            (match_host, "match.host"),
        ] {
            if set {
                return self.err(
                    &key,
                    format!(
                        "cannot be combined with {what}: each request's Host names the upstream"
                    ),
                );
            }
        }
        let Some(set) = named.credentials.clone() else {
            return self.err(
                &key,
                "needs credentials: a route that forwards unsigned to any AWS host is an open relay",
            );
        };
        let scheme = match scheme.as_deref() {
            None | Some("https") => "https",
            Some("http") => "http",
            Some(other) => {
                return self.err(
                    format!("{key}.scheme"),
                    format!("'{other}' is not http or https"),
                )
            }
        };
        let mut allowed_hosts = Vec::new();
        for (i, host) in listed.unwrap_or_default().iter().enumerate() {
            let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
            let ok = Upstream::parse(&format!("{scheme}://{host}"))
                .is_ok_and(|u| u.base_path().is_empty() && !host.contains('/'));
            if !ok || host.is_empty() {
                return self.err(
                    format!("{key}.allowed_hosts[{i}]"),
                    format!("'{host}' is not a host name (with an optional :port)"),
                );
            }
            allowed_hosts.push(host);
        }
        if scheme == "http" && allowed_hosts.is_empty() {
            return self.err(
                format!("{key}.scheme"),
                "http serves only the hosts upstream_from_host.allowed_hosts lists: AWS \
                 endpoints are reached over https only (over http a signed request and its \
                 session token would cross the network in clear text); list the hosts",
            );
        }
        let from = FromHost {
            scheme,
            allowed_hosts,
            credentials: set,
            service: named.service.clone(),
            region: named.region.clone(),
            payload: named.payload.clone(),
            signing: named.signing.clone(),
            region_set: named.region_set.clone(),
            flags: self.flags,
            credential_sets: credentials.clone(),
        };
        // Every listed host must be one sigproxy can sign for: found out now, not per request.
        let template_checker = Checker {
            path: self.path,
            flags: self.flags,
            kept: None,
        };
        for (i, host) in from.allowed_hosts.iter().enumerate() {
            if scheme == "http" {
                super::route::warn_if_aws_in_clear_text(&host_name(host));
            }
            let url = format!("{scheme}://{host}");
            let upstream = Upstream::parse(&url).or_else(|why| self.err(&key, why))?;
            let named = from.named();
            template_checker
                .signing(&key, named, &upstream, &UpstreamTls::default(), credentials)
                .map_err(|e| ConfigError {
                    key: format!("{key}.allowed_hosts[{i}]"),
                    ..e
                })?;
        }
        // The credentials, service, region and payload are checked against a known AWS shape
        // too, so a typo is found at start even without listed hosts.
        let probe = Upstream::parse("https://lambda.us-east-1.amazonaws.com").expect("valid URL");
        let named = Named {
            credentials: Some(from.credentials.clone()),
            service: from.service.clone(),
            region: from.region.clone(),
            payload: None,
            signing: from.signing.clone(),
            region_set: from.region_set.clone(),
            sign_host: None,
        };
        self.signing(
            &key.replace(".upstream_from_host", ""),
            named,
            &probe,
            &UpstreamTls::default(),
            credentials,
        )?;
        let placeholder = Upstream::parse(PLACEHOLDER).expect("valid URL");
        Ok(Some((placeholder, from)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use std::path::Path;

    fn error(route: &str) -> String {
        let yaml = format!("credentials:\n  a: {{}}\nroutes:\n  - credentials: a\n{route}");
        Config::parse(&yaml, Path::new("f.yaml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_file_route_may_take_its_upstream_from_the_host() {
        let yaml = "credentials:\n  a: {}\nroutes:\n  - credentials: a\n    upstream_from_host: { allowed_hosts: [s3.example.internal:9000] }\n    service: s3\n    region: garage\n";
        let c = Config::parse(yaml, Path::new("f.yaml")).unwrap();
        let from = c.routes[0].from_host.as_ref().unwrap();
        assert_eq!(
            from.upstream_for("S3.example.internal:9000").as_deref(),
            Some("https://s3.example.internal:9000")
        );
        assert_eq!(from.upstream_for("s3.example.internal:9001"), None);
        assert!(c
            .access
            .browser
            .hosts
            .contains(&"s3.example.internal".to_string()));
        let cases = [
            ("    upstream_from_host: {}\n    upstream: https://x.lambda-url.us-east-1.on.aws\n", "routes[0].upstream_from_host: cannot be combined with upstream"),
            ("    upstream_from_host: {}\n    allow: [{methods: [GET]}]\n", "cannot be combined with allow"),
            ("    upstream_from_host: { scheme: ftp }\n", "routes[0].upstream_from_host.scheme: 'ftp' is not http or https"),
            ("    upstream_from_host: { allowed_hosts: [fn.internal] }\n", "routes[0].upstream_from_host.allowed_hosts[0]: 'fn.internal' is not an AWS endpoint sigproxy knows"),
        ];
        for (route, want) in cases {
            let got = error(route);
            assert!(got.contains(want), "want: {want}\ngot:  {got}");
        }
        let unsigned = "routes:\n  - upstream_from_host: {}\n";
        let got = Config::parse(unsigned, Path::new("f.yaml"))
            .unwrap_err()
            .to_string();
        assert!(got.contains("needs credentials"), "{got}");
    }
}
