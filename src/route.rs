//! Routes: which upstream, signer and limits serve a request, chosen by host and path prefix.
//!
//! Routes are tried in the order of the configuration file; the first match wins. The path is
//! matched as the client sent it (still percent-encoded).

use crate::access::{check_rules, copy_source_path, policy_path, AllowRule, Denied};
use crate::config::{Config, RouteConfig};
use crate::credentials::CredentialStore;
use crate::error::ProxyError;
use crate::metrics::{metrics, RouteMetrics};
use crate::sign::Signer;
use crate::target::{upstream_target, PathRules};
use crate::upstream::PeerFactory;
use std::sync::Arc;

#[derive(Debug)]
pub struct Route {
    pub name: String,
    host: Option<String>,
    path_prefix: Option<String>,
    strip_prefix: bool,
    pub peers: PeerFactory,
    /// `None` for a pass-through (unsigned) route.
    pub signer: Option<Signer>,
    pub max_body_bytes: usize,
    path_rules: PathRules,
    allow: Vec<AllowRule>,
    pub metrics: RouteMetrics,
}

impl Route {
    fn new(config: &RouteConfig, credentials: &CredentialStore) -> Route {
        let signer = config.signing.as_ref().map(|s| {
            let set = credentials
                .get(&s.credentials)
                .expect("configuration validation checked the credential set exists");
            Signer::new(s, set.clone())
        });
        Route {
            name: config.name.clone(),
            host: config.host.as_ref().map(|h| h.to_ascii_lowercase()),
            path_prefix: config.path_prefix.clone(),
            strip_prefix: config.strip_prefix,
            peers: PeerFactory::new(
                config.upstream.clone(),
                config.connect_timeout,
                config.read_timeout,
            ),
            signer,
            max_body_bytes: config.max_body_bytes,
            allow: config.allow.clone(),
            metrics: metrics().for_route(&config.name),
            path_rules: match &config.signing {
                Some(s) if s.service == "s3" => PathRules::S3,
                _ => PathRules::Normalized,
            },
        }
    }

    fn matches(&self, host: Option<&str>, path: &str) -> bool {
        if let Some(want) = &self.host {
            match host {
                Some(h) if strip_port(h).eq_ignore_ascii_case(want) => {}
                _ => return false,
            }
        }
        match &self.path_prefix {
            None => true,
            Some(prefix) => {
                path.starts_with(prefix.as_str()) || path == prefix.trim_end_matches('/')
            }
        }
    }

    /// The path and query to send upstream, exactly as they will be signed.
    pub fn target(&self, path: &str, query: Option<&str>) -> Result<String, ProxyError> {
        let strip = if self.strip_prefix {
            self.path_prefix.as_deref()
        } else {
            None
        };
        upstream_target(
            path,
            query,
            strip,
            self.peers.upstream().base_path(),
            self.path_rules,
        )
    }
}

impl Route {
    /// Whether the route's `allow` list grants `method` on `target` (as [`Route::target`] made
    /// it: the path that is signed and sent). On S3, a copy (`x-amz-copy-source`) also needs
    /// a grant to read its source, or the allow list could be sidestepped by copying an object
    /// into an allowed prefix.
    pub fn permits(
        &self,
        method: &http::Method,
        target: &str,
        copy_source: Option<&str>,
    ) -> Result<(), Denied> {
        if self.allow.is_empty() {
            return Ok(());
        }
        let normalize = self.path_rules == PathRules::Normalized;
        let path = policy_path(target, normalize).ok_or(Denied::Path)?;
        check_rules(&self.allow, method, &path)?;
        match copy_source {
            Some(source) if self.path_rules == PathRules::S3 => {
                check_rules(&self.allow, &http::Method::GET, &copy_source_path(source))
                    .map_err(|_| Denied::Path)
            }
            _ => Ok(()),
        }
    }
}

/// `host:port` or `[v6]:port` without the port.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_once(']').map_or(host, |(h, _)| &h[1..]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

#[derive(Debug)]
pub struct Router {
    routes: Vec<Arc<Route>>,
}

impl Router {
    pub fn new(config: &Config, credentials: &CredentialStore) -> Router {
        Router {
            routes: config
                .routes
                .iter()
                .map(|r| Arc::new(Route::new(r, credentials)))
                .collect(),
        }
    }

    /// The first route that matches, in configuration order.
    pub fn find(&self, host: Option<&str>, path: &str) -> Option<&Arc<Route>> {
        self.routes.iter().find(|r| r.matches(host, path))
    }

    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
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
        &r.find(host, path).unwrap().name
    }

    #[test]
    fn first_match_in_order_wins() {
        let r = router(YAML);
        assert_eq!(
            find(&r, Some("orders.internal:8080"), "/orders/1"),
            "by-host"
        );
        assert_eq!(find(&r, Some("ORDERS.internal"), "/x"), "by-host");
        assert_eq!(find(&r, Some("localhost:8080"), "/orders/1"), "orders");
        assert_eq!(find(&r, Some("localhost:8080"), "/orders"), "orders");
        assert_eq!(find(&r, Some("localhost:8080"), "/ordersX"), "fallback");
        assert_eq!(find(&r, None, "/"), "fallback");
    }

    #[test]
    fn no_match_is_none() {
        let r =
            router("routes:\n  - match: { path_prefix: /a/ }\n    upstream: http://127.0.0.1:1\n");
        assert!(r.find(Some("localhost"), "/b").is_none());
    }

    #[test]
    fn target_strips_prefix_and_adds_base() {
        let r = router(YAML);
        let route = r.find(None, "/orders/1").unwrap();
        assert_eq!(
            route.target("/orders/1", Some("a=b")).unwrap(),
            "/base/1?a=b"
        );
    }

    #[test]
    fn an_s3_copy_needs_a_grant_to_read_its_source() {
        let r = router(
            "credentials:\n  app: { source: default }\nroutes:\n  - name: s3\n    upstream: http://127.0.0.1:9000\n    service: s3\n    region: us-east-1\n    credentials: app\n    allow:\n      - methods: [GET, PUT]\n        paths: [\"/bkt/pub/**\"]\n",
        );
        let route = r.find(None, "/").unwrap();
        let put = http::Method::PUT;
        assert_eq!(route.permits(&put, "/bkt/pub/x", None), Ok(()));
        assert_eq!(route.permits(&put, "/bkt/pub/x", Some("bkt/pub/y")), Ok(()));
        assert_eq!(
            route.permits(&put, "/bkt/pub/x", Some("/bkt/secret/y?versionId=1")),
            Err(Denied::Path)
        );
        assert_eq!(
            route.permits(&put, "/bkt/pub/x", Some("bkt/pub/..%2F..%2Fsecret")),
            Ok(()),
            "S3 keys are literal: this source is under bkt/pub/"
        );
    }

    #[test]
    fn host_port_is_ignored_for_matching() {
        assert_eq!(strip_port("a.b:8080"), "a.b");
        assert_eq!(strip_port("a.b"), "a.b");
        assert_eq!(strip_port("[::1]:8080"), "::1");
    }
}
