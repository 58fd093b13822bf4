//! Routes whose upstream is the request's `Host` (`upstream_from_host`, aws-sigv4-proxy without
//! `--host`): one [`Route`] per served host, settled by [`RouteConfig::for_host`] on first use
//! (upstream, peers, service, region, S3 path rules and policy all the host's own) and kept in
//! a bounded cache.

use super::Route;
use crate::config::RouteConfig;
use crate::credentials::CredentialSet;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tracing::debug;

/// Hosts whose route is kept. Listed hosts are few; AWS endpoint names (a bucket each) are
/// not, so past this an arbitrary entry makes room.
const MAX_HOSTS: usize = 256;

#[derive(Debug)]
pub(super) struct FromHostRoutes {
    template: RouteConfig,
    set: Arc<CredentialSet>,
    /// By upstream URL (`https://host[:port]`).
    cache: Mutex<HashMap<String, Arc<Route>>>,
}

impl FromHostRoutes {
    pub(super) fn new(template: RouteConfig, set: Arc<CredentialSet>) -> Self {
        FromHostRoutes {
            template,
            set,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The route's name (`access.clients[].routes` lists it).
    pub(super) fn name(&self) -> &str {
        &self.template.name
    }

    pub(super) fn credentials(&self) -> &str {
        self.set.name()
    }

    /// The route for a request's `host`, or `None` if it is not served (not an AWS endpoint,
    /// not listed, or one that cannot be signed for).
    pub(super) fn for_host(&self, host: Option<&str>) -> Option<Arc<Route>> {
        let host = host?;
        let from = self.template.from_host.as_ref()?;
        let url = from.upstream_for(host)?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(route) = cache.get(&url) {
            return Some(route.clone());
        }
        let config = match self.template.for_host(host)? {
            Ok(config) => config,
            Err(e) => {
                // Debug, not warn: any client can name any Host, before it is vouched for.
                debug!(route = %self.template.name, host, "cannot sign for this Host: {e}");
                return None;
            }
        };
        let route = Arc::new(Route::with_set(&config, Some(self.set.clone())));
        if cache.len() >= MAX_HOSTS {
            if let Some(old) = cache.keys().next().cloned() {
                cache.remove(&old);
            }
        }
        cache.insert(url, route.clone());
        Some(route)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, Flags};
    use crate::credentials::CredentialStore;
    use crate::route::Router;
    use crate::service::Service;

    fn router(flags: Flags) -> Router {
        let config = Config::from_flags(&flags).unwrap();
        let store = CredentialStore::new(&config);
        Router::new(&config, &store)
    }

    #[test]
    fn the_host_picks_the_upstream_only_for_aws_endpoints_and_listed_hosts() {
        let r = router(Flags {
            allowed_upstream_hosts: vec!["fn.internal:9000".into()],
            name: Some("lambda".into()),
            region: Some("eu-west-1".into()),
            ..Flags::default()
        });
        let route = |host: &str| r.find(Some(host), "/x").map(|found| found.map(|f| f.0));
        let s3 = route("my-bucket.s3.eu-west-1.amazonaws.com:8080")
            .unwrap()
            .unwrap();
        assert_eq!(
            s3.peers.upstream().authority(),
            "my-bucket.s3.eu-west-1.amazonaws.com"
        );
        assert!(s3.peers.upstream().tls());
        // --name and --region say what every host signs as.
        let signer = s3.signer.as_ref().unwrap();
        assert_eq!(signer.service(), &Service::Lambda);
        let listed = route("FN.internal:9000").unwrap().unwrap();
        assert_eq!(listed.peers.upstream().authority(), "fn.internal:9000");
        for refused in [
            "attacker.example",
            "localhost:8080",
            "127.0.0.1",
            "fn.internal.evil",
            // An AWS name on the right, another host as far as a URL is concerned.
            "127.0.0.1#.s3.amazonaws.com",
            "127.0.0.1/.s3.amazonaws.com",
            "[127.0.0.1:8999/.s3.amazonaws.com]",
            "localhost/.s3.amazonaws.com",
            "[localhost:8999/.execute-api.us-east-1.amazonaws.com]",
            "169.254.169.254#.s3.amazonaws.com",
            "evil.com@my-bucket.s3.amazonaws.com",
            "evil.com%23.s3.amazonaws.com",
            "my bucket.s3.amazonaws.com",
            "fn.internal:9000@evil.com",
        ] {
            assert_eq!(route(refused).unwrap_err().status(), 421, "{refused}");
        }
        assert_eq!(r.find(None, "/x").unwrap_err().status(), 421);
    }

    #[test]
    fn each_host_signs_as_its_own_service_with_its_own_path_rules() {
        let r = router(Flags::default());
        let s3 = r
            .find(Some("s3.us-west-2.amazonaws.com"), "/b/a//k")
            .unwrap()
            .unwrap();
        assert_eq!(s3.0.signer.as_ref().unwrap().service(), &Service::S3);
        assert_eq!(s3.0.path_rules(), crate::service::PathRules::S3);
        assert_eq!(s3.0.target(&s3.1, None).unwrap(), "/b/a//k");
        let aps = r
            .find(Some("aps-workspaces.us-west-2.amazonaws.com"), "/a/../b")
            .unwrap()
            .unwrap();
        assert_eq!(
            aps.0.signer.as_ref().unwrap().service(),
            &Service::from("aps")
        );
        assert_eq!(aps.0.target(&aps.1, None).unwrap(), "/b");
        // The same host reuses its route (and its peers' DNS cache).
        let again = r
            .find(Some("s3.us-west-2.amazonaws.com"), "/")
            .unwrap()
            .unwrap();
        assert!(std::sync::Arc::ptr_eq(&again.0, &s3.0));
    }
}
