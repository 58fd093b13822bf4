//! Validation: the file's raw structures checked, key by key, into the internal types.

use super::file;
use super::signing::Named;
use super::*;
use crate::access::browser::host_name;
use crate::upstream::Upstream;
use std::ops::RangeInclusive;

/// GetSessionToken and GetFederationToken accept 15 minutes to 36 hours.
const TOKEN_DURATION_RANGE: RangeInclusive<i64> = 900..=129_600;

pub(super) struct Checker<'a> {
    pub(super) path: &'a Path,
    /// Built from aws-sigv4-proxy's flags: an unsigned payload is allowed for any service, as
    /// that tool allows it.
    pub(super) flags: bool,
}

impl Checker<'_> {
    pub(super) fn err<T>(
        &self,
        key: impl Into<String>,
        reason: impl Into<String>,
    ) -> Result<T, ConfigError> {
        Err(ConfigError {
            path: self.path.to_owned(),
            key: key.into(),
            reason: reason.into(),
        })
    }

    pub(super) fn config(&self, raw: file::File) -> Result<Config, ConfigError> {
        let listen = self.socket_addr("listen", raw.listen.as_deref(), DEFAULT_LISTEN)?;
        let admin_listen = self.socket_addr(
            "admin_listen",
            raw.admin_listen.as_deref(),
            DEFAULT_ADMIN_LISTEN,
        )?;
        if listen == admin_listen {
            return self.err("admin_listen", "must differ from listen");
        }
        let mut access = self.access(
            raw.access,
            &[("listen", listen), ("admin_listen", admin_listen)],
        )?;
        let max_header_bytes = match raw.max_header_bytes {
            None => DEFAULT_MAX_HEADER_BYTES,
            Some(n) if (1024..=MAX_MAX_HEADER_BYTES as u64).contains(&n) => n as usize,
            Some(n) => {
                return self.err(
                    "max_header_bytes",
                    format!("{n} is outside 1024 to {MAX_MAX_HEADER_BYTES}"),
                )
            }
        };
        let threads = raw.threads.unwrap_or(1);
        if !(1..=64).contains(&threads) {
            return self.err("threads", "must be between 1 and 64");
        }
        let shutdown =
            self.shutdown(raw.shutdown_delay.as_deref(), raw.shutdown_grace.as_deref())?;

        let upgrade_socket = match raw.upgrade_socket {
            Some(path) if path.starts_with('/') => PathBuf::from(path),
            Some(_) => return self.err("upgrade_socket", "must be an absolute path"),
            None => default_upgrade_socket(listen.port()),
        };

        let mut credentials = BTreeMap::new();
        for (name, set) in raw.credentials {
            let checked = self.credentials(&name, set)?;
            credentials.insert(name, checked);
        }

        if raw.routes.is_empty() {
            return self.err("routes", "at least one route is required");
        }
        let mut routes: Vec<RouteConfig> = Vec::with_capacity(raw.routes.len());
        for (i, route) in raw.routes.into_iter().enumerate() {
            let route = self.route(i, route, &credentials)?;
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
        // A route's own host is a name clients reach sigproxy by.
        access.browser.hosts.extend(
            routes
                .iter()
                .filter_map(|r| r.host.as_deref())
                .map(host_name),
        );
        // A from-host route's Host names its upstream: AWS endpoints and its listed hosts.
        for from in routes.iter().filter_map(|r| r.from_host.as_ref()) {
            access.browser.aws_endpoints = true;
            access.browser.hosts.extend(from.listed_names());
        }
        let limits = self.limits(
            super::limits::Raw {
                keepalive_timeout: raw.keepalive_timeout.as_deref(),
                request_header_timeout: raw.request_header_timeout.as_deref(),
                max_connections: raw.max_connections,
                max_buffered_body_bytes: raw.max_buffered_body_bytes,
            },
            &routes,
        )?;

        Ok(Config {
            path: self.path.to_owned(),
            listen,
            admin_listen,
            threads,
            shutdown_delay: shutdown.delay,
            shutdown_grace: shutdown.grace,
            access,
            max_header_bytes,
            limits,
            upgrade_socket,
            credentials,
            routes,
        })
    }

    fn socket_addr(
        &self,
        key: &str,
        value: Option<&str>,
        default: &str,
    ) -> Result<SocketAddr, ConfigError> {
        let value = value.unwrap_or(default);
        value.parse().or_else(|_| {
            self.err(
                key,
                format!("'{value}' is not an IP address and port, e.g. {default}"),
            )
        })
    }

    pub(super) fn duration(
        &self,
        key: &str,
        value: Option<&str>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        match value {
            None => Ok(default),
            Some(text) => match humantime::parse_duration(text) {
                Ok(d) if !d.is_zero() => Ok(d),
                Ok(_) => self.err(key, "must be greater than zero"),
                Err(e) => self.err(
                    key,
                    format!("'{text}' is not a duration like 5s or 2m: {e}"),
                ),
            },
        }
    }

    fn credentials(
        &self,
        name: &str,
        raw: file::CredentialSet,
    ) -> Result<CredentialsConfig, ConfigError> {
        let key = format!("credentials.{name}");
        if !valid_name(name) {
            return self.err(&key, "names use letters, digits, '-' and '_' only");
        }
        let source = match (raw.source.as_deref().unwrap_or("default"), raw.profile) {
            ("default", None) => Source::Default,
            ("default", Some(_)) => {
                return self.err(
                    format!("{key}.profile"),
                    "only valid with `source: profile`",
                )
            }
            ("profile", profile) => Source::Profile(profile),
            (other, _) => {
                return self.err(
                    format!("{key}.source"),
                    format!("unknown source '{other}'; expected 'default' or 'profile'"),
                )
            }
        };
        let roles = raw.assume_role.map(|r| r.into_vec()).unwrap_or_default();
        let chained = roles.len() > 1;
        let mut assume_role = Vec::with_capacity(roles.len());
        for (i, role) in roles.into_iter().enumerate() {
            let role_key = if chained {
                format!("{key}.assume_role[{i}]")
            } else {
                format!("{key}.assume_role")
            };
            // AWS limits a session assumed with another role's credentials to one hour.
            let cap = (i > 0).then_some(3600);
            assume_role.push(self.assume_role(&role_key, role, cap)?);
        }
        let sts_token = match (raw.session_token, raw.federation_token) {
            (Some(_), Some(_)) => {
                return self.err(
                    format!("{key}.federation_token"),
                    "session_token and federation_token exclude each other",
                )
            }
            (Some(t), None) => Some(self.sts_token(&format!("{key}.session_token"), t, false)?),
            (None, Some(t)) => Some(self.sts_token(&format!("{key}.federation_token"), t, true)?),
            (None, None) => None,
        };
        if sts_token.is_some() && !assume_role.is_empty() {
            return self.err(
                format!("{key}.assume_role"),
                "cannot be combined with session_token or federation_token (STS only issues those to IAM users)",
            );
        }
        let refresh_before_expiry = self.duration(
            &format!("{key}.refresh_before_expiry"),
            raw.refresh_before_expiry.as_deref(),
            DEFAULT_REFRESH_BEFORE_EXPIRY,
        )?;
        Ok(CredentialsConfig {
            name: name.to_string(),
            source,
            assume_role,
            sts_token,
            refresh_before_expiry,
        })
    }

    /// `duration_seconds` (default one hour) within the range STS accepts for this call.
    fn sts_seconds(
        &self,
        key: &str,
        seconds: Option<i64>,
        range: RangeInclusive<i64>,
    ) -> Result<Duration, ConfigError> {
        let seconds = seconds.unwrap_or(3600);
        if !range.contains(&seconds) {
            let human = |s: i64| match s % 3600 {
                0 => format!("{} h", s / 3600),
                _ => format!("{} min", s / 60),
            };
            let (low, high) = (*range.start(), *range.end());
            return self.err(
                format!("{key}.duration_seconds"),
                format!(
                    "{seconds} is outside STS's range of {low} ({}) to {high} ({})",
                    human(low),
                    human(high)
                ),
            );
        }
        Ok(Duration::from_secs(seconds as u64))
    }

    /// `sts_region` and `sts_endpoint`, wherever STS is called.
    fn sts_location(
        &self,
        key: &str,
        region: Option<&str>,
        endpoint: Option<&str>,
    ) -> Result<(), ConfigError> {
        if let Some(endpoint) = endpoint {
            if let Err(why) = Upstream::parse(endpoint) {
                return self.err(format!("{key}.sts_endpoint"), why);
            }
        }
        if let Some(region) = region.filter(|r| !valid_region(r)) {
            return self.err(
                format!("{key}.sts_region"),
                format!("'{region}' is not a region name"),
            );
        }
        Ok(())
    }

    fn sts_token(
        &self,
        key: &str,
        raw: file::StsToken,
        federation: bool,
    ) -> Result<StsTokenConfig, ConfigError> {
        let kind = if federation {
            let Some(name) = raw.name else {
                return self.err(
                    format!("{key}.name"),
                    "is required (the federated user's name)",
                );
            };
            if !(2..=32).contains(&name.len())
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(c))
            {
                return self.err(
                    format!("{key}.name"),
                    "must be 2-32 characters of letters, digits and +=,.@-_",
                );
            }
            if let Some(policy) = &raw.policy {
                if let Err(e) = serde_json::from_str::<serde_json::Value>(policy) {
                    return self.err(format!("{key}.policy"), format!("is not JSON: {e}"));
                }
            }
            StsTokenKind::Federation {
                name,
                policy: raw.policy,
            }
        } else {
            for (field, set) in [
                ("name", raw.name.is_some()),
                ("policy", raw.policy.is_some()),
            ] {
                if set {
                    return self.err(
                        format!("{key}.{field}"),
                        "only federation_token takes a name and a policy",
                    );
                }
            }
            StsTokenKind::Session
        };
        let duration = self.sts_seconds(key, raw.duration_seconds, TOKEN_DURATION_RANGE)?;
        self.sts_location(key, raw.sts_region.as_deref(), raw.sts_endpoint.as_deref())?;
        Ok(StsTokenConfig {
            kind,
            duration,
            sts_region: raw.sts_region,
            sts_endpoint: raw.sts_endpoint,
        })
    }

    /// One role to assume; `chained_cap` is the longest session AWS allows for a chained hop.
    fn assume_role(
        &self,
        key: &str,
        raw: file::AssumeRole,
        chained_cap: Option<i64>,
    ) -> Result<AssumeRoleConfig, ConfigError> {
        let Some(role_arn) = raw.role_arn else {
            return self.err(format!("{key}.role_arn"), "is required");
        };
        if !is_role_arn(&role_arn) {
            return self.err(
                format!("{key}.role_arn"),
                format!("'{role_arn}' is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)"),
            );
        }
        let session_name = match raw.session_name {
            Some(name) => {
                if !valid_session_name(&name) {
                    return self.err(
                        format!("{key}.session_name"),
                        "must be 2-64 characters of letters, digits and +=,.@-_",
                    );
                }
                name
            }
            None => default_session_name(),
        };
        if let Some(id) = &raw.external_id {
            let ok = (2..=1224).contains(&id.len())
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+=,.@:/-_".contains(c));
            if !ok {
                return self.err(
                    format!("{key}.external_id"),
                    "must be 2-1224 characters of letters, digits and +=,.@:/-_",
                );
            }
        }
        let duration = raw.duration_seconds.unwrap_or(3600);
        if let Some(cap) = chained_cap.filter(|cap| duration > *cap) {
            return self.err(
                format!("{key}.duration_seconds"),
                format!("{duration} is over {cap}: AWS caps sessions of chained roles at one hour"),
            );
        }
        let duration = self.sts_seconds(key, Some(duration), ROLE_DURATION_RANGE)?;
        self.sts_location(key, raw.sts_region.as_deref(), raw.sts_endpoint.as_deref())?;
        Ok(AssumeRoleConfig {
            role_arn,
            session_name,
            external_id: raw.external_id,
            duration,
            sts_region: raw.sts_region,
            sts_endpoint: raw.sts_endpoint,
        })
    }

    fn route(
        &self,
        i: usize,
        raw: file::Route,
        credentials: &BTreeMap<String, CredentialsConfig>,
    ) -> Result<RouteConfig, ConfigError> {
        let key = format!("routes[{i}]");
        let mut raw = raw;
        let name = raw.name.take().unwrap_or_else(|| format!("route{i}"));
        if !valid_name(&name) {
            return self.err(
                format!("{key}.name"),
                "names use letters, digits, '-' and '_' only",
            );
        }
        let (host, path_prefix) = match &raw.matcher {
            None => (None, None),
            Some(m) => (m.host.clone(), m.path_prefix.clone()),
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
        if raw.strip_prefix && path_prefix.is_none() {
            return self.err(
                format!("{key}.strip_prefix"),
                "needs match.path_prefix to know what to strip",
            );
        }
        let (upstream, from_host) = match self.upstream_from_host(&key, &mut raw, credentials)? {
            Some((placeholder, from)) => (placeholder, Some(from)),
            None => {
                let Some(upstream) = raw.upstream.take() else {
                    return self.err(format!("{key}.upstream"), "is required");
                };
                match Upstream::parse(&upstream) {
                    Ok(u) => (u, None),
                    Err(why) => return self.err(format!("{key}.upstream"), why),
                }
            }
        };

        let named = Named {
            credentials: raw.credentials.take(),
            service: raw.service.take(),
            region: raw.region.take(),
            payload: raw.payload.take(),
            sign_host: raw.sign_host.clone(),
        };
        // A from-host route signs per request (`RouteConfig::for_host`).
        let signing = match from_host {
            Some(_) => None,
            None => self.signing(&key, named, &upstream, credentials)?,
        };

        let max_body_bytes = match raw.max_body_bytes {
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
            raw.connect_timeout.as_deref(),
            DEFAULT_CONNECT_TIMEOUT,
        )?;
        let read_timeout = self.duration(
            &format!("{key}.read_timeout"),
            raw.read_timeout.as_deref(),
            DEFAULT_READ_TIMEOUT,
        )?;

        let service = signing.as_ref().map(|s| s.service.action_namespace());
        let allow = self.allow_rules(&format!("{key}.allow"), raw.allow, service)?;
        let options = self.upstream_options(
            &key,
            &name,
            raw.sign_host,
            raw.headers,
            raw.tls,
            raw.upstream_idle_timeout,
        )?;
        let s3_addressing = match (raw.s3_addressing.as_deref(), service) {
            (None, _) => None,
            (Some(_), s) if s != Some("s3") => {
                return self.err(format!("{key}.s3_addressing"), "is for S3 routes only")
            }
            (Some("path"), _) => Some(S3Addressing::Path),
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
            from_host,
            name,
            host,
            path_prefix,
            strip_prefix: raw.strip_prefix,
            upstream,
            signing,
            max_body_bytes,
            connect_timeout,
            read_timeout,
        })
    }
}

pub(super) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

pub(super) fn valid_region(region: &str) -> bool {
    !region.is_empty()
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

pub(super) fn is_role_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "iam"
        && parts[4].len() == 12
        && parts[4].chars().all(|c| c.is_ascii_digit())
        && parts[5].starts_with("role/")
        && parts[5].len() > "role/".len()
}

pub(super) fn valid_session_name(name: &str) -> bool {
    (2..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(c))
}

/// `sigproxy-<hostname>`, cut to STS's 64 characters and its character set.
pub(super) fn default_session_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let mut name = String::from("sigproxy");
    let host: String = host
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(*c))
        .collect();
    if !host.is_empty() {
        name.push('-');
        name.push_str(&host);
    }
    name.truncate(64);
    name
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
    if let Some(c) = prefix
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-._~/".contains(*c)))
    {
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

/// `sigproxy-<port>.upgrade.sock` in a directory only sigproxy's user can write:
/// systemd's `$RUNTIME_DIRECTORY`, else `$XDG_RUNTIME_DIR/sigproxy`, else `/tmp/sigproxy-<uid>`
/// (created with mode 0700 at start; see [`crate::server`]).
fn default_upgrade_socket(port: u16) -> PathBuf {
    let file = format!("sigproxy-{port}.upgrade.sock");
    let env_dir = |name| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    if let Some(dir) = std::env::var("RUNTIME_DIRECTORY")
        .ok()
        .and_then(|d| d.split(':').next().map(PathBuf::from))
        .filter(|p| p.is_absolute())
    {
        return dir.join(file);
    }
    if let Some(dir) = env_dir("XDG_RUNTIME_DIR") {
        return dir.join("sigproxy").join(file);
    }
    let uid = std::fs::metadata("/proc/self").map_or(0, |m| {
        use std::os::unix::fs::MetadataExt;
        m.uid()
    });
    PathBuf::from(format!("/tmp/sigproxy-{uid}")).join(file)
}
