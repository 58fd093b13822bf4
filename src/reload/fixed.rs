//! The keys a running process cannot change: they are baked into its listeners, its runtime or
//! its drain when it starts. A reload reports them as needing a restart and applies the rest of
//! the file, checked as if those keys still said what the process runs with.

use crate::config::{Config, ConfigError, KeptTokens};
use crate::tls::ListenerTls;
use serde_yaml_ng::Value;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// How a fixed key is written in the file.
enum Kind {
    Text,
    Number,
    /// `tls` / `admin_tls`: a mapping of the two files, or absent.
    Tls(fn(&Config) -> Option<&ListenerTls>),
    /// `credential_endpoint.listen`: the running address, or no endpoint at all.
    EndpointListen,
}

/// A key's value in a configuration, as the file writes it.
type Read = fn(&Config) -> String;

/// Each key fixed at start-up, with its value as the file writes it.
const FIXED: &[(&str, Kind, Read)] = &[
    ("listen", Kind::Text, |c| c.listen.to_string()),
    ("admin_listen", Kind::Text, |c| {
        c.admin_listen.map_or("none".into(), |a| a.to_string())
    }),
    // Which files; a change of their contents is a certificate rotation (see `tls::watch`).
    (
        "tls",
        Kind::Tls(|c| c.tls.as_ref().map(|t| &t.files)),
        |c| tls_files(c.tls.as_ref().map(|t| &t.files)),
    ),
    (
        "admin_tls",
        Kind::Tls(|c| c.admin_tls.as_ref().map(|t| &t.files)),
        |c| tls_files(c.admin_tls.as_ref().map(|t| &t.files)),
    ),
    // The set and token apply on reload; the listener is the process's.
    ("credential_endpoint.listen", Kind::EndpointListen, |c| {
        c.credential_endpoint
            .as_ref()
            .map_or_else(|| "none".into(), |e| e.listen.to_string())
    }),
    ("threads", Kind::Number, |c| c.threads.to_string()),
    ("upgrade_socket", Kind::Text, |c| {
        c.upgrade_socket.display().to_string()
    }),
    ("shutdown_delay", Kind::Text, |c| duration(c.shutdown_delay)),
    ("shutdown_grace", Kind::Text, |c| duration(c.shutdown_grace)),
    ("max_header_bytes", Kind::Number, |c| {
        c.max_header_bytes.to_string()
    }),
    ("keepalive_timeout", Kind::Text, |c| {
        duration(c.limits.keepalive_timeout)
    }),
    ("request_header_timeout", Kind::Text, |c| {
        duration(c.limits.request_header_timeout)
    }),
    ("client_write_timeout", Kind::Text, |c| {
        duration(c.limits.client_write_timeout)
    }),
    ("request_body_timeout", Kind::Text, |c| {
        duration(c.limits.request_body_timeout)
    }),
    ("min_request_body_rate", Kind::Number, |c| {
        c.limits.min_request_body_rate.to_string()
    }),
    ("max_connections", Kind::Number, |c| {
        c.limits.max_connections.to_string()
    }),
    ("max_websocket_connections", Kind::Number, |c| {
        c.limits.max_websocket_connections.to_string()
    }),
    ("max_buffered_body_bytes", Kind::Number, |c| {
        c.limits.max_buffered_body_bytes.to_string()
    }),
];

fn tls_files(files: Option<&ListenerTls>) -> String {
    match files {
        None => "none".into(),
        Some(f) => format!(
            "cert_file {}, key_file {}",
            f.cert_file.display(),
            f.key_file.display()
        ),
    }
}

fn duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// A fixed key whose value in the file differs from the one the process runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub key: &'static str,
    pub running: String,
    pub file: String,
}

/// The configuration a reload may apply from `text`, and the changes it leaves for a restart.
///
/// `text` is checked as `--check` checks it. When it changes fixed keys, it is checked a
/// second time with those keys as the process runs them: the checks that weigh one key against
/// another (a non-loopback `listen` needs `access` limits, `max_buffered_body_bytes` must hold
/// every route's body) then judge what will really be in force. A file that moves `listen` to
/// loopback and drops its bearer token is refused while the process still listens elsewhere.
pub fn checked(
    text: &str,
    path: &Path,
    running: &Config,
    endpoint: Option<SocketAddr>,
    kept: Option<&KeptTokens>,
) -> Result<(Config, Vec<Change>), ConfigError> {
    let new = Config::parse_keeping(text, path, kept)?;
    let changes: Vec<Change> = FIXED
        .iter()
        .filter_map(|(key, kind, value)| {
            let running = match kind {
                // The process's listener, whatever a reload since removed or put back.
                Kind::EndpointListen => endpoint.map_or_else(|| "none".into(), |a| a.to_string()),
                _ => value(running),
            };
            let file = value(&new);
            (running != file).then_some(Change { key, running, file })
        })
        .collect();
    if changes.is_empty() {
        return Ok((new, changes));
    }
    let refused = |reason: String| ConfigError {
        path: path.to_owned(),
        key: String::new(),
        reason,
    };
    let mut doc: Value =
        serde_yaml_ng::from_str(text).map_err(|e| refused(format!("cannot re-read: {e}")))?;
    let map = doc
        .as_mapping_mut()
        .ok_or_else(|| refused("the file is not a mapping".into()))?;
    for (key, kind, value) in FIXED {
        let name = Value::String((*key).to_string());
        let value = match kind {
            Kind::EndpointListen => {
                let block = Value::String("credential_endpoint".into());
                match endpoint {
                    // Not listening: a new endpoint waits for a restart.
                    None => {
                        map.remove(&block);
                    }
                    // Listening: a file without the block serves nothing there (503); one
                    // with it (again) is served on the process's listener.
                    Some(listen) => {
                        if let Some(endpoint) = map.get_mut(&block).and_then(|b| b.as_mapping_mut())
                        {
                            endpoint.insert("listen".into(), Value::String(listen.to_string()));
                        }
                    }
                }
                continue;
            }
            Kind::Text => Value::String(value(running)),
            Kind::Number => Value::Number(
                value(running)
                    .parse::<u64>()
                    .map_err(|e| refused(e.to_string()))?
                    .into(),
            ),
            Kind::Tls(files) => match files(running) {
                None => {
                    map.remove(&name);
                    continue;
                }
                Some(f) => {
                    let mut pair = serde_yaml_ng::Mapping::new();
                    let path = |p: &Path| Value::String(p.display().to_string());
                    pair.insert("cert_file".into(), path(&f.cert_file));
                    pair.insert("key_file".into(), path(&f.key_file));
                    Value::Mapping(pair)
                }
            },
        };
        map.insert(name, value);
    }
    let as_running =
        serde_yaml_ng::to_string(&doc).map_err(|e| refused(format!("cannot re-write: {e}")))?;
    let keys: Vec<&str> = changes.iter().map(|c| c.key).collect();
    let effective = Config::parse_keeping(&as_running, path, kept).map_err(|e| ConfigError {
        reason: format!(
            "{} (checked with {} as running, since changing {} needs a restart)",
            e.reason,
            keys.join(", "),
            if keys.len() == 1 { "it" } else { "them" }
        ),
        ..e
    })?;
    Ok((effective, changes))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE: &str = "routes:\n  - upstream: http://127.0.0.1:1\n";

    fn config(text: &str) -> Config {
        Config::parse(text, Path::new("s.yaml")).unwrap()
    }

    #[test]
    fn unchanged_fixed_keys_apply_the_file_as_is() {
        let running = config(&format!("listen: 127.0.0.1:8080\n{ROUTE}"));
        let (new, changes) = checked(
            "listen: 127.0.0.1:8080\nroutes:\n  - upstream: http://127.0.0.1:2\n    match: { path_prefix: /b/ }\n  - upstream: http://127.0.0.1:1\n",
            Path::new("s.yaml"),
            &running,
            None,
            None,
        )
        .unwrap();
        assert!(changes.is_empty(), "{changes:?}");
        assert_eq!(new.routes.len(), 2);
    }

    #[test]
    fn changed_fixed_keys_are_reported_and_not_applied() {
        let running = config(&format!("listen: 127.0.0.1:8080\n{ROUTE}"));
        let text =
            format!("listen: 127.0.0.1:9090\nmax_connections: 10\nshutdown_grace: 1m 30s\nmin_request_body_rate: 50\n{ROUTE}");
        let (new, changes) = checked(&text, Path::new("s.yaml"), &running, None, None).unwrap();
        let keys: Vec<&str> = changes.iter().map(|c| c.key).collect();
        // upgrade_socket's default follows the listen port, max_websocket_connections' the
        // connection limit.
        assert_eq!(
            keys,
            [
                "listen",
                "upgrade_socket",
                "shutdown_grace",
                "min_request_body_rate",
                "max_connections",
                "max_websocket_connections"
            ]
        );
        assert_eq!(changes[0].running, "127.0.0.1:8080");
        assert_eq!(changes[0].file, "127.0.0.1:9090");
        assert_eq!(new.listen, running.listen);
        assert_eq!(new.limits, running.limits);
        assert_eq!(new.shutdown_grace, running.shutdown_grace);
        assert_eq!(new.upgrade_socket, running.upgrade_socket);
    }

    #[test]
    fn a_file_safe_only_on_its_own_listen_address_is_refused() {
        // Running on every interface, guarded by allowed_clients. The new file moves listen to
        // loopback (which needs a restart) and drops the guard: alone it passes --check, but
        // the process would go on listening everywhere with nothing limiting who may use it.
        let running = config(&format!(
            "listen: 0.0.0.0:8080\naccess:\n  allow_non_loopback: [listen]\n  allowed_clients: [10.0.0.0/8]\n{ROUTE}"
        ));
        let text = format!("listen: 127.0.0.1:8080\n{ROUTE}");
        assert!(Config::parse(&text, Path::new("s.yaml")).is_ok());
        let e = checked(&text, Path::new("s.yaml"), &running, None, None).unwrap_err();
        let message = e.to_string();
        assert!(message.starts_with("s.yaml: listen: "), "{message}");
        assert!(message.contains("not a loopback address"), "{message}");
        assert!(message.contains("checked with listen"), "{message}");
    }

    #[test]
    fn the_credential_endpoint_listener_needs_a_restart_and_its_set_does_not() {
        std::env::set_var("FIXED_TEST_ENDPOINT_TOKEN", "endpoint-token-0123456789");
        let sets = "credentials:\n  a: { assume_role: { role_arn: 'arn:aws:iam::123456789012:role/a' } }\n  b: { assume_role: { role_arn: 'arn:aws:iam::123456789012:role/b' } }\n";
        let endpoint = |listen: &str, set: &str| {
            format!("credential_endpoint:\n  listen: {listen}\n  credentials: {set}\n  authorization_token_env: FIXED_TEST_ENDPOINT_TOKEN\n{sets}{ROUTE}")
        };
        let running = config(&endpoint("127.0.0.1:9911", "a"));
        let listening = Some("127.0.0.1:9911".parse().unwrap());
        let (new, changes) = checked(
            &endpoint("127.0.0.1:9912", "b"),
            Path::new("s.yaml"),
            &running,
            listening,
            None,
        )
        .unwrap();
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].key, "credential_endpoint.listen");
        let e = new.credential_endpoint.unwrap();
        assert_eq!(e.listen.to_string(), "127.0.0.1:9911");
        assert_eq!(e.credentials, "b");
        // No endpoint running: one added by a reload waits for a restart.
        let bare = config(&format!("{sets}{ROUTE}"));
        let back = endpoint("127.0.0.1:9911", "a");
        let (new, changes) = checked(&back, Path::new("s.yaml"), &bare, None, None).unwrap();
        assert_eq!(changes[0].file, "127.0.0.1:9911");
        assert_eq!(changes[0].running, "none");
        assert!(new.credential_endpoint.is_none());
        // Running, its block removed by an earlier reload: put back, it is served again.
        let (new, changes) = checked(&back, Path::new("s.yaml"), &bare, listening, None).unwrap();
        assert!(changes.is_empty(), "{changes:?}");
        assert_eq!(
            new.credential_endpoint.unwrap().listen.to_string(),
            "127.0.0.1:9911"
        );
    }

    #[test]
    fn a_route_body_larger_than_the_running_buffer_is_refused() {
        let running = config(&format!("max_buffered_body_bytes: 1000000\n{ROUTE}"));
        let text = "max_buffered_body_bytes: 8000000\ncredentials:\n  app: { source: default }\nroutes:\n  - upstream: http://127.0.0.1:1\n    service: lambda\n    region: us-east-1\n    credentials: app\n    max_body_bytes: 5000000\n";
        assert!(Config::parse(text, Path::new("s.yaml")).is_ok());
        let e = checked(text, Path::new("s.yaml"), &running, None, None).unwrap_err();
        assert_eq!(e.key, "max_buffered_body_bytes", "{e}");
    }
}
