//! Routes: which upstream, signer and limits serve a request, chosen by host and path prefix.
//!
//! Routes are tried in the order of the configuration file; the first match wins. A route's
//! prefix is matched against the path as that route's service reads it ([`resolve`]: escapes of
//! unreserved characters decoded, dot segments resolved outside S3), the same path its allow
//! list checks and that is signed and sent, so no spelling of a path picks another route than
//! the path it reaches.

use crate::access::browser::host_name;
use crate::access::policy::{AfterBody, S3Space, Service};
use crate::access::{Policy, Refusal};
use crate::actions::s3::BucketLayout;
use crate::config::{Config, RouteConfig, S3Addressing, WebSocketLimits};
use crate::credentials::{CredentialSet, CredentialStore};
use crate::error::ProxyError;
use crate::metrics::{metrics, RouteMetrics};
use crate::service::PathRules;
use crate::sign::Signer;
use crate::target::{resolve, strip_prefix, stripped_rest, target_from, QueryPlus, Resolved};
use crate::upstream::edits::HeaderEdits;
use crate::upstream::PeerFactory;
use pingora::upstreams::peer::HttpPeer;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

mod from_host;
use from_host::FromHostRoutes;

#[derive(Debug)]
pub struct Route {
    pub name: String,
    host: Option<String>,
    path_prefix: Option<String>,
    strip_prefix: bool,
    pub peers: PeerFactory,
    /// The `Host` sent and signed: `sign_host`, else the upstream's authority.
    pub host_header: String,
    /// What the route does to request headers (`headers:`).
    pub header_edits: HeaderEdits,
    /// `None` for a pass-through (unsigned) route.
    pub signer: Option<Signer>,
    pub max_body_bytes: usize,
    /// Limits of the route's upgraded (WebSocket) connections.
    pub websocket: WebSocketLimits,
    path_rules: PathRules,
    /// The `allow` list, and the service it speaks of.
    policy: Policy,
    pub metrics: RouteMetrics,
    /// A route signing with a `per_client` set: the same route signing with each client's own
    /// session, by client (see [`Route::for_client`]). Empty otherwise.
    clients: BTreeMap<String, Arc<Route>>,
}

impl Route {
    fn new(config: &RouteConfig, sets: &Config, credentials: &CredentialStore) -> Route {
        let Some(signing) = &config.signing else {
            return Route::with_set(config, None);
        };
        if let Some(set) = credentials.get(&signing.credentials) {
            return Route::with_set(config, Some(set.clone()));
        }
        // A `per_client` set: no session of its own (signing with it answers 503), one per
        // client instead.
        let per_client = sets
            .credentials
            .get(&signing.credentials)
            .expect("configuration validation checked the credential set exists");
        let mut route = Route::with_set(
            config,
            Some(Arc::new(CredentialSet::new(per_client.clone()))),
        );
        route.clients = credentials
            .sessions_of(&signing.credentials)
            .map(|(client, set)| {
                let own = Route::with_set(config, Some(set.clone()));
                (client.to_string(), Arc::new(own))
            })
            .collect();
        route
    }

    /// This route as `client` (`access.clients`) uses it: signing with the client's own
    /// session when the route's set is `per_client`, else the route itself.
    pub fn for_client(self: &Arc<Route>, client: &str) -> Arc<Route> {
        match self.clients.get(client) {
            Some(own) => own.clone(),
            None => self.clone(),
        }
    }

    /// The route for `config`, signing (if it signs) with `set`.
    fn with_set(config: &RouteConfig, set: Option<Arc<CredentialSet>>) -> Route {
        let signer = config
            .signing
            .as_ref()
            .zip(set)
            .map(|(s, set)| Signer::new(s, set));
        Route {
            name: config.name.clone(),
            host: config.host.as_deref().map(host_name),
            path_prefix: config.path_prefix.clone(),
            strip_prefix: config.strip_prefix,
            peers: PeerFactory::new(
                config.upstream.clone(),
                config.connect_timeout,
                config.read_timeout,
                config.upstream_idle_timeout,
                config.tls.clone(),
            ),
            host_header: config
                .sign_host
                .clone()
                .unwrap_or_else(|| config.upstream.authority().to_string()),
            header_edits: config.header_edits.clone(),
            signer,
            max_body_bytes: config.max_body_bytes,
            websocket: config.websocket,
            policy: Policy::new(
                config.allow.clone(),
                match &config.signing {
                    Some(s) if s.service.speaks_s3() => Service::S3(s3_space(config)),
                    s => Service::Other(s.as_ref().map(|s| s.service.signing_name().to_string())),
                },
            ),
            metrics: metrics().for_route(&config.name),
            clients: BTreeMap::new(),
            path_rules: config
                .signing
                .as_ref()
                .map_or(PathRules::Normalized, |s| s.service.path_rules()),
        }
    }

    /// Whether this route serves `host` and the resolved `path`. A path that matches the prefix
    /// only once its reserved escapes are decoded (`/v1%2Fadmin` for `/v1/`) is ambiguous: an
    /// upstream may read it either way, so it is refused rather than routed elsewhere.
    fn matches(&self, host: Option<&str>, path: &Resolved) -> Result<bool, ProxyError> {
        if let Some(want) = &self.host {
            match host {
                Some(h) if host_name(h) == *want => {}
                _ => return Ok(false),
            }
        }
        let Some(prefix) = &self.path_prefix else {
            return Ok(true);
        };
        let covers = |path: &[u8]| {
            path.starts_with(prefix.as_bytes()) || path == prefix.trim_end_matches('/').as_bytes()
        };
        match (covers(path.encoded.as_bytes()), covers(&path.decoded)) {
            (true, _) => Ok(true),
            (false, false) => Ok(false),
            (false, true) => Err(ProxyError::BadRequest(
                "the path spells this route's prefix with escaped characters".into(),
            )),
        }
    }

    /// The path and query to send upstream, exactly as they will be signed.
    pub fn target(&self, path: &Resolved, query: Option<&str>) -> Result<String, ProxyError> {
        let rest = match (&self.path_prefix, self.strip_prefix) {
            (Some(prefix), true) if self.path_rules == PathRules::Normalized => {
                stripped_rest(&path.encoded, prefix)?
            }
            (Some(prefix), true) => strip_prefix(&path.encoded, prefix),
            _ => &path.encoded,
        };
        // Only SigV4 upstreams are known to read `+` as a space (see `QueryPlus`).
        let plus = match self.signer {
            Some(_) => QueryPlus::Space,
            None => QueryPlus::AsSent,
        };
        target_from(rest, self.peers.upstream().base_path(), query, plus)
    }

    /// The upstream peer for a request of `client` (its name; `None` without client identities)
    /// on this route. Pooled connections are kept apart per route and client: an upstream that
    /// answers before reading a body and keeps the connection (against RFC 9112) reads the rest
    /// as the next request on it, which must never be another route's or another client's
    /// (whose signed request, session token included, it would then answer to the first).
    /// They are kept apart per CA trusted too (see [`PeerFactory::trust`]).
    pub async fn peer(&self, client: Option<&str>) -> Result<HttpPeer, ProxyError> {
        let mut peer = self.peers.peer().await?;
        let mut group = std::hash::DefaultHasher::new();
        (&self.name, client, self.peers.trust()).hash(&mut group);
        peer.group_key = group.finish();
        Ok(peer)
    }

    pub fn path_rules(&self) -> PathRules {
        self.path_rules
    }
}

impl Route {
    /// Whether the route's `allow` list grants the request whose upstream target is `target`
    /// (as [`Route::target`] made it: the path that is signed and sent). `Ok(Some(_))`: the
    /// rest of the check needs the body ([`Route::permits_body`]).
    pub fn permits(
        &self,
        method: &http::Method,
        target: &str,
        headers: &http::HeaderMap,
    ) -> Result<Option<AfterBody>, Refusal> {
        self.policy.check(method, target, headers)
    }

    /// Finishes a check that waited for the body.
    pub fn permits_body(&self, pending: AfterBody, body: &[u8]) -> Result<(), Refusal> {
        self.policy.check_body(pending, body)
    }
}

/// What an S3 route reaches: the bucket layout (stated, or read from an AWS host name) and the
/// upstream's base path. The host name is the one S3 reads: `sign_host` when set (a VPC
/// endpoint or a tunnel reached by address, a bucket's own name sent and signed), else the
/// upstream's.
fn s3_space(config: &RouteConfig) -> S3Space {
    let host = config
        .sign_host
        .as_deref()
        .unwrap_or_else(|| config.upstream.host());
    let aws = host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn");
    let address = host.parse::<std::net::IpAddr>().is_ok() || host == "localhost";
    let layout = match config.s3_addressing {
        Some(S3Addressing::Path) => BucketLayout::PathStyle,
        Some(S3Addressing::VirtualHost) if !aws => BucketLayout::VirtualHosted {
            bucket: host.split('.').next().map(str::to_string),
        },
        _ => BucketLayout::from_upstream_host(host),
    };
    let base = percent_encoding::percent_decode_str(config.upstream.base_path()).collect();
    S3Space {
        layout,
        base,
        layout_known: aws || address || config.s3_addressing.is_some(),
    }
}

#[derive(Debug)]
pub struct Router {
    /// Every route, in configuration order.
    entries: Vec<Entry>,
    /// The fixed ones (those with an `upstream`).
    routes: Vec<Arc<Route>>,
}

#[derive(Debug)]
enum Entry {
    Fixed(Arc<Route>),
    /// `upstream_from_host`: a route per served host, made on first use.
    FromHost(Box<FromHostRoutes>),
}

impl Router {
    pub fn new(config: &Config, credentials: &CredentialStore) -> Router {
        let entries: Vec<Entry> = config
            .routes
            .iter()
            .map(|r| match &r.from_host {
                None => Entry::Fixed(Arc::new(Route::new(r, config, credentials))),
                Some(from) => {
                    let set = credentials
                        .get(from.credentials())
                        .expect("configuration validation checked the credential set exists");
                    Entry::FromHost(Box::new(FromHostRoutes::new(r.clone(), set.clone())))
                }
            })
            .collect();
        let routes = entries
            .iter()
            .filter_map(|e| match e {
                Entry::Fixed(r) => Some(r.clone()),
                Entry::FromHost(_) => None,
            })
            .collect();
        Router { entries, routes }
    }

    /// The first route that matches, in configuration order, with the client's raw `path`
    /// resolved for it. A path that cannot be resolved, or is ambiguous for a route it would
    /// otherwise reach, is an error (`400`); a `Host` a from-host route does not serve, when no
    /// other route matches, is `421` (nothing is sent).
    pub fn find(
        &self,
        host: Option<&str>,
        path: &str,
    ) -> Result<Option<(Arc<Route>, Resolved)>, ProxyError> {
        self.find_for(host, path, |_| true)
    }

    /// [`Router::find`] for a client (`access.clients`) that may use only the routes `usable`
    /// names. A route it may not use still wins where it comes first, and where it would refuse
    /// the path or the `Host` (`400`, `421`) the client is refused as for any route not its own
    /// (`Forbidden(ClientRoute)`): those answers would tell it that such a route exists.
    pub fn find_for(
        &self,
        host: Option<&str>,
        path: &str,
        usable: impl Fn(&str) -> bool,
    ) -> Result<Option<(Arc<Route>, Resolved)>, ProxyError> {
        let not_yours = || ProxyError::Forbidden(crate::access::Denied::ClientRoute);
        // Each form is worked out once, when the first route that needs it is tried.
        let mut normalized: Option<Resolved> = None;
        let mut s3: Option<Resolved> = None;
        let mut refused_host = false;
        for entry in &self.entries {
            let route = match entry {
                Entry::Fixed(route) => route.clone(),
                Entry::FromHost(routes) => match routes.for_host(host) {
                    Some(route) => route,
                    None => {
                        refused_host |= usable(routes.name());
                        continue;
                    }
                },
            };
            let slot = match route.path_rules {
                PathRules::Normalized => &mut normalized,
                PathRules::S3 => &mut s3,
            };
            let resolved = match slot {
                Some(r) => r,
                None => match resolve(path, route.path_rules) {
                    Ok(r) => slot.insert(r),
                    Err(_) if !usable(&route.name) => return Err(not_yours()),
                    Err(e) => return Err(e),
                },
            };
            let matched = match route.matches(host, resolved) {
                Err(_) if !usable(&route.name) => return Err(not_yours()),
                matched => matched?,
            };
            if matched {
                let resolved = resolved.clone();
                return Ok(Some((route, resolved)));
            }
        }
        if refused_host {
            return Err(ProxyError::Forbidden(crate::access::Denied::Host));
        }
        Ok(None)
    }

    /// The routes with a fixed upstream.
    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }

    /// The credential sets some route signs with (readiness waits for these).
    pub fn credential_sets(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter_map(|e| match e {
                Entry::Fixed(r) => r
                    .signer
                    .as_ref()
                    .map(|s| s.credentials().name().to_string()),
                Entry::FromHost(routes) => Some(routes.credentials().to_string()),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn router(yaml: &str) -> Router {
        let config = Config::parse(yaml, Path::new("test.yaml")).unwrap();
        let store = CredentialStore::new(&config);
        Router::new(&config, &store)
    }

    const YAML: &str = r#"
routes:
  - name: by-host
    match: { host: orders.internal }
    upstream: http://127.0.0.1:1
  - name: orders
    match: { path_prefix: /orders/ }
    strip_prefix: true
    upstream: http://127.0.0.1:2/base
  - name: fallback
    upstream: http://127.0.0.1:3
"#;

    fn find<'a>(r: &'a Router, host: Option<&str>, path: &str) -> &'a str {
        let name = r.find(host, path).unwrap().unwrap().0.name.clone();
        r.routes()
            .iter()
            .find(|x| x.name == name)
            .unwrap()
            .name
            .as_str()
    }

    fn target(r: &Router, path: &str, query: Option<&str>) -> String {
        let (route, resolved) = r.find(None, path).unwrap().unwrap();
        route.target(&resolved, query).unwrap()
    }

    #[test]
    fn first_match_in_order_wins() {
        let r = router(YAML);
        assert_eq!(
            find(&r, Some("orders.internal:8080"), "/orders/1"),
            "by-host"
        );
        assert_eq!(find(&r, Some("ORDERS.internal."), "/x"), "by-host");
        assert_eq!(find(&r, Some("localhost:8080"), "/orders/1"), "orders");
        assert_eq!(find(&r, Some("localhost:8080"), "/orders"), "orders");
        assert_eq!(find(&r, Some("localhost:8080"), "/ordersX"), "fallback");
        assert_eq!(find(&r, None, "/"), "fallback");
    }

    #[test]
    fn no_match_is_none() {
        let r =
            router("routes:\n  - match: { path_prefix: /a/ }\n    upstream: http://127.0.0.1:1\n");
        assert!(r.find(Some("localhost"), "/b").unwrap().is_none());
    }

    #[test]
    fn target_strips_prefix_and_adds_base() {
        let r = router(YAML);
        assert_eq!(target(&r, "/orders/1", Some("a=b")), "/base/1?a=b");
        assert_eq!(target(&r, "/orders", None), "/base/");
    }

    #[test]
    fn routes_match_the_path_that_is_sent_not_its_spelling() {
        let r = router(YAML);
        // Escaped unreserved characters are those characters.
        assert_eq!(find(&r, None, "/%6Frders/1"), "orders");
        assert_eq!(target(&r, "/%6Frders/1", None), "/base/1");
        // A path that climbs out of the prefix is not the prefix's route.
        assert_eq!(find(&r, None, "/orders/%2E%2E/admin"), "fallback");
        assert_eq!(find(&r, None, "/orders/../admin"), "fallback");
        assert_eq!(target(&r, "/orders/%2e%2e/admin", None), "/admin");
        // The prefix spelt with a reserved escape: ambiguous, refused.
        assert_eq!(
            r.find(None, "/orders%2F1").unwrap_err().status(),
            400,
            "an escaped '/' in the prefix"
        );
        // A climb hidden behind an escaped slash: refused whatever the route.
        assert_eq!(r.find(None, "/x/..%2Fy").unwrap_err().status(), 400);
    }

    #[test]
    fn a_client_is_refused_not_told_why_a_route_it_may_not_use_refuses() {
        let r = router(YAML);
        let not_yours = ProxyError::Forbidden(crate::access::Denied::ClientRoute);
        let fallback_only = |name: &str| name == "fallback";
        assert_eq!(r.find(None, "/orders%2F1").unwrap_err().status(), 400);
        assert_eq!(
            r.find_for(None, "/orders%2F1", fallback_only).unwrap_err(),
            not_yours
        );
        assert_eq!(
            r.find_for(None, "/orders%2F1", |name| name == "orders")
                .unwrap_err()
                .status(),
            400
        );
        // A from-host route's refusal of the Host (421) is its own too.
        let from_host = router(
            "credentials:\n  app: { source: default }\nroutes:\n  - name: open\n    match: { path_prefix: /open/ }\n    upstream: http://127.0.0.1:1\n  - name: aws\n    upstream_from_host: {}\n    credentials: app\n",
        );
        let find = |usable: fn(&str) -> bool| {
            from_host
                .find_for(Some("attacker.example"), "/x", usable)
                .map(|found| found.is_some())
        };
        assert_eq!(find(|_| true).unwrap_err().status(), 421);
        assert_eq!(find(|name| name == "open"), Ok(false));
    }

    #[test]
    fn s3_routes_match_the_decoded_key() {
        let r = router(
            "credentials:\n  app: { source: default }\nroutes:\n  - name: reports\n    match: { path_prefix: /my-bucket/ }\n    upstream: http://127.0.0.1:9000\n    service: s3\n    region: us-east-1\n    credentials: app\n    allow:\n      - methods: [GET]\n  - name: all\n    upstream: http://127.0.0.1:9000\n    service: s3\n    region: us-east-1\n    credentials: app\n",
        );
        assert_eq!(find(&r, None, "/%6Dy-bucket/secret/payroll.csv"), "reports");
        assert_eq!(find(&r, None, "/my%2Dbucket/x"), "reports");
        assert_eq!(find(&r, None, "/other/x"), "all");
        assert_eq!(target(&r, "/%6Dy-bucket/a%2Fb", None), "/my-bucket/a/b");
    }
}
