//! Routes: how requests are matched, where they go, and in which order routes are tried.

use super::check::{valid_name, word_char, Checker};
use super::file;
use super::from_host::Excluded;
use super::signing::Named;
use super::{
    ConfigError, CredentialsConfig, RouteConfig, S3Addressing, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_BODY_BYTES, DEFAULT_READ_TIMEOUT, MAX_MAX_BODY_BYTES,
};
use crate::access::browser::host_name;
use crate::actions::s3::BucketLayout;
use crate::upstream::Upstream;
use std::collections::BTreeMap;

impl Checker<'_> {
    /// Every route, in order; a route that an earlier one shadows entirely is an error.
    pub(super) fn routes(
        &self,
        raw: Vec<file::Route>,
        credentials: &BTreeMap<String, CredentialsConfig>,
    ) -> Result<Vec<RouteConfig>, ConfigError> {
        if raw.is_empty() {
            return self.err("routes", "at least one route is required");
        }
        let mut routes: Vec<RouteConfig> = Vec::with_capacity(raw.len());
        for (i, route) in raw.into_iter().enumerate() {
            let route = self.route(i, route, credentials)?;
            if routes.iter().any(|r| r.name == route.name) {
                return self.err(
                    format!("routes[{i}].name"),
                    format!("duplicate route name '{}'", route.name),
                );
            }
            if let Some(earlier) = routes.iter().find(|r| covers(r, &route)) {
                return self.err(
                    format!("routes[{i}]"),
                    format!(
                        "route '{}' can never match: route '{}' comes first and matches every \
                         request it would. Move the more specific route above it",
                        route.name, earlier.name
                    ),
                );
            }
            routes.push(route);
        }
        Ok(routes)
    }

    fn route(
        &self,
        i: usize,
        raw: file::Route,
        credentials: &BTreeMap<String, CredentialsConfig>,
    ) -> Result<RouteConfig, ConfigError> {
        let file::Route {
            name,
            matcher,
            strip_prefix,
            upstream,
            upstream_from_host,
            service,
            region,
            signing,
            region_set,
            credentials: set,
            payload,
            max_body_bytes,
            connect_timeout,
            read_timeout,
            allow,
            s3_addressing,
            sign_host,
            headers,
            tls,
            upstream_idle_timeout,
            websocket,
        } = raw;
        let key = format!("routes[{i}]");
        let name = name.unwrap_or_else(|| format!("route{i}"));
        if !valid_name(&name) {
            return self.err(
                format!("{key}.name"),
                "names use letters, digits, '-' and '_' only",
            );
        }
        let (host, path_prefix) = match matcher {
            None => (None, None),
            Some(file::Match { path_prefix, host }) => (host, path_prefix),
        };
        if let Some(prefix) = &path_prefix {
            if let Err(why) = check_prefix(prefix) {
                return self.err(format!("{key}.match.path_prefix"), why);
            }
        }
        if let Some(host) = &host {
            if host.is_empty() || host.contains(['/', ' ']) {
                return self.err(format!("{key}.match.host"), "must be a host name");
            }
        }
        if strip_prefix && path_prefix.is_none() {
            return self.err(
                format!("{key}.strip_prefix"),
                "needs match.path_prefix to know what to strip",
            );
        }

        let named = Named {
            credentials: set,
            service,
            region,
            payload,
            signing,
            region_set,
            sign_host: sign_host.clone(),
        };
        let excluded = Excluded {
            upstream: upstream.is_some(),
            sign_host: sign_host.is_some(),
            s3_addressing: s3_addressing.is_some(),
            allow: allow.is_some(),
            match_host: host.is_some(),
        };
        let options =
            self.upstream_options(&key, &name, sign_host, headers, tls, upstream_idle_timeout)?;
        let from_host =
            self.upstream_from_host(&key, upstream_from_host, &named, excluded, credentials)?;
        let (upstream, from_host, signing) = match from_host {
            // A from-host route signs per request (`RouteConfig::for_host`).
            Some((placeholder, from)) => (placeholder, Some(from), None),
            None => {
                let Some(upstream) = upstream else {
                    return self.err(format!("{key}.upstream"), "is required");
                };
                let upstream = match Upstream::parse(&upstream) {
                    Ok(u) => u,
                    Err(why) => return self.err(format!("{key}.upstream"), why),
                };
                if !upstream.tls() {
                    // The name signed for may be AWS's though the host reached is a tunnel.
                    let signed = options.sign_host.as_deref().unwrap_or(upstream.host());
                    warn_if_aws_in_clear_text(signed);
                }
                let signing = self.signing(&key, named, &upstream, &options.tls, credentials)?;
                (upstream, None, signing)
            }
        };

        let max_body_bytes = match max_body_bytes {
            None => DEFAULT_MAX_BODY_BYTES,
            Some(n) if n as usize <= MAX_MAX_BODY_BYTES => n as usize,
            Some(n) => {
                return self.err(
                    format!("{key}.max_body_bytes"),
                    format!(
                        "{n} is above {MAX_MAX_BODY_BYTES}: signed bodies are held in memory to be hashed"
                    ),
                )
            }
        };
        let connect_timeout = self.duration(
            &format!("{key}.connect_timeout"),
            connect_timeout.as_deref(),
            DEFAULT_CONNECT_TIMEOUT,
        )?;
        let read_timeout = self.duration(
            &format!("{key}.read_timeout"),
            read_timeout.as_deref(),
            DEFAULT_READ_TIMEOUT,
        )?;

        let service = signing.as_ref().map(|s| s.service.action_namespace());
        let allow = self.allow_rules(&format!("{key}.allow"), allow, service)?;
        let websocket = self.websocket(&key, websocket)?;
        let speaks_s3 = signing.as_ref().is_some_and(|s| s.service.speaks_s3());
        let s3_addressing = match (s3_addressing.as_deref(), speaks_s3) {
            (None, _) => None,
            (Some(_), false) => {
                return self.err(format!("{key}.s3_addressing"), "is for S3 routes only")
            }
            (Some("path"), _) => {
                // An AWS name that holds a bucket (`b.s3.<region>.amazonaws.com`): S3 reads
                // every path there as a key in that bucket, so a path-style reading would check
                // allow lists and copy sources against buckets the route never reaches.
                let read_by_s3 = options.sign_host.as_deref().unwrap_or(upstream.host());
                if let BucketLayout::VirtualHosted { .. } =
                    BucketLayout::from_upstream_host(read_by_s3)
                {
                    return self.err(
                        format!("{key}.s3_addressing"),
                        format!(
                            "'path' contradicts {read_by_s3}, a bucket's own host name, where S3 \
                             reads the path as a key: leave s3_addressing out"
                        ),
                    );
                }
                Some(S3Addressing::Path)
            }
            (Some("virtual-host"), _) => Some(S3Addressing::VirtualHost),
            (Some(other), _) => {
                return self.err(
                    format!("{key}.s3_addressing"),
                    format!("'{other}' is not path or virtual-host"),
                )
            }
        };

        Ok(RouteConfig {
            allow,
            s3_addressing,
            sign_host: options.sign_host,
            header_edits: options.header_edits,
            tls: options.tls,
            upstream_idle_timeout: options.idle_timeout,
            websocket,
            from_host,
            name,
            host,
            path_prefix,
            strip_prefix,
            upstream,
            signing,
            max_body_bytes,
            connect_timeout,
            read_timeout,
        })
    }
}

/// Whether route `earlier` matches every request `later` would (so `later` never does).
fn covers(earlier: &RouteConfig, later: &RouteConfig) -> bool {
    let host = match (&earlier.host, &later.host) {
        (None, _) => true,
        (Some(a), Some(b)) => host_name(a) == host_name(b),
        (Some(_), None) => false,
    };
    let path = match (&earlier.path_prefix, &later.path_prefix) {
        (None, _) => true,
        (Some(a), Some(b)) => b.starts_with(a.as_str()),
        (Some(_), None) => false,
    };
    host && path
}

/// A route prefix is matched against resolved paths, so it must be one: a plain path of
/// unreserved characters, without `.`/`..` or empty segments.
fn check_prefix(prefix: &str) -> Result<(), String> {
    if !prefix.starts_with('/') {
        return Err("must start with '/'".into());
    }
    if let Some(c) = prefix.chars().find(|c| !word_char(*c, "-._~/")) {
        return Err(format!(
            "'{c}' is not allowed: use letters, digits, '-', '.', '_', '~' and '/'"
        ));
    }
    let inner = prefix[1..].strip_suffix('/').unwrap_or(&prefix[1..]);
    if !inner.is_empty() && inner.split('/').any(|s| matches!(s, "" | "." | "..")) {
        return Err("must not have empty, '.' or '..' segments".into());
    }
    Ok(())
}

/// Warns when `host`, reached over plain http, is an AWS endpoint: every request, its signature
/// and the session token would cross the network in clear text.
pub(super) fn warn_if_aws_in_clear_text(host: &str) {
    if crate::endpoints::resolve(host).is_ok() {
        tracing::warn!(
            host = %host,
            "plain http to (or signing for) an AWS endpoint: every request, its signature and \
             the session token cross the network in clear text; use https"
        );
    }
}
