//! A route's `websocket:` limits: how long an upgraded connection may stay silent
//! (`idle_timeout`) and how long it may last at all (`max_lifetime`). The defaults are API
//! Gateway WebSocket APIs' own (10 minutes idle, 2 hours in all), so sigproxy never holds a
//! connection that AWS would already have dropped, and never cuts one AWS would keep.

use super::check::Checker;
use super::file;
use super::ConfigError;
use std::time::Duration;

/// API Gateway closes a WebSocket connection idle this long.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// API Gateway closes every WebSocket connection after this long.
pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(2 * 3600);
/// Far beyond any AWS WebSocket limit; keeps deadlines from overflowing.
const MAX_LIMIT: Duration = Duration::from_secs(24 * 3600);

/// The checked limits of a route's upgraded (WebSocket) connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebSocketLimits {
    /// Closed when no byte has gone either way for this long.
    pub idle_timeout: Duration,
    /// Closed this long after the upgrade, busy or not.
    pub max_lifetime: Duration,
}

impl Default for WebSocketLimits {
    fn default() -> Self {
        WebSocketLimits {
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_lifetime: DEFAULT_MAX_LIFETIME,
        }
    }
}

impl Checker<'_> {
    /// `key` is the route's (`routes[2]`).
    pub(super) fn websocket(
        &self,
        key: &str,
        raw: Option<file::WebSocket>,
    ) -> Result<WebSocketLimits, ConfigError> {
        let Some(raw) = raw else {
            return Ok(WebSocketLimits::default());
        };
        let limit = |name: &str, value: Option<String>, default| {
            let key = format!("{key}.websocket.{name}");
            let d = self.duration(&key, value.as_deref(), default)?;
            if d > MAX_LIMIT {
                return self.err(key, "must be at most 24h");
            }
            Ok(d)
        };
        let idle_timeout = limit("idle_timeout", raw.idle_timeout, DEFAULT_IDLE_TIMEOUT)?;
        let max_lifetime = limit("max_lifetime", raw.max_lifetime, DEFAULT_MAX_LIFETIME)?;
        if idle_timeout > max_lifetime {
            return self.err(
                format!("{key}.websocket.idle_timeout"),
                "is longer than websocket.max_lifetime, which would always come first",
            );
        }
        Ok(WebSocketLimits {
            idle_timeout,
            max_lifetime,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    fn parse(websocket: &str) -> Result<WebSocketLimits, String> {
        let text = format!("routes:\n  - upstream: http://127.0.0.1:1\n{websocket}");
        Config::parse(&text, Path::new("conf/ws.yaml"))
            .map(|c| c.routes[0].websocket)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_api_gateways_own_limits() {
        assert_eq!(parse("").unwrap(), WebSocketLimits::default());
        assert_eq!(
            parse("    websocket: {}\n").unwrap(),
            WebSocketLimits::default()
        );
        let both = parse("    websocket: { idle_timeout: 30s, max_lifetime: 1h }\n").unwrap();
        assert_eq!(both.idle_timeout, Duration::from_secs(30));
        assert_eq!(both.max_lifetime, Duration::from_secs(3600));
    }

    #[test]
    fn errors_name_the_file_the_key_and_the_reason() {
        for (yaml, message) in [
            (
                "    websocket: { idle_timeout: soon }\n",
                "conf/ws.yaml: routes[0].websocket.idle_timeout: 'soon' is not a duration",
            ),
            (
                "    websocket: { max_lifetime: 0s }\n",
                "conf/ws.yaml: routes[0].websocket.max_lifetime: must be greater than zero",
            ),
            (
                "    websocket: { max_lifetime: 25h }\n",
                "conf/ws.yaml: routes[0].websocket.max_lifetime: must be at most 24h",
            ),
            (
                "    websocket: { idle_timeout: 2h, max_lifetime: 1h }\n",
                "conf/ws.yaml: routes[0].websocket.idle_timeout: is longer than",
            ),
            (
                "    websocket: { idle: 1m }\n",
                "conf/ws.yaml: line 3 column 18: routes[0].websocket: unknown field `idle`",
            ),
        ] {
            let e = parse(yaml).unwrap_err();
            assert!(e.starts_with(message), "{yaml}: {e}");
        }
    }
}
