//! The SIGTERM sequence's two durations (see [`crate::drain`]): `shutdown_delay`, how long to
//! keep accepting while the endpoint's removal propagates, and `shutdown_grace`, how long
//! requests in flight then get to finish.

use super::check::Checker;
use super::ConfigError;
use std::time::Duration;

/// Long enough for Kubernetes to take a terminating pod's endpoint out of kube-proxy's rules
/// and ingress controllers (typically 1 to 3 s), short enough to keep rollouts quick.
pub const DEFAULT_SHUTDOWN_DELAY: Duration = Duration::from_secs(5);
/// Requests in flight when the listener closes get this long; the process exits as soon as
/// none is left, so a long grace costs nothing when traffic is light.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Far beyond any orchestrator's termination grace; keeps deadlines from overflowing.
const MAX_SHUTDOWN: Duration = Duration::from_secs(3600);

/// `shutdown_delay` and `shutdown_grace`, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shutdown {
    pub delay: Duration,
    pub grace: Duration,
}

impl Checker<'_> {
    pub(super) fn shutdown(
        &self,
        delay: Option<&str>,
        grace: Option<&str>,
    ) -> Result<Shutdown, ConfigError> {
        // `0s` is a valid delay: nothing routes here but through sigproxy's own listener (a
        // native sidecar, which gets SIGTERM only after the app has exited; systemd).
        let delay = match delay {
            None => DEFAULT_SHUTDOWN_DELAY,
            Some(text) => humantime::parse_duration(text).or_else(|e| {
                self.err(
                    "shutdown_delay",
                    format!("'{text}' is not a duration like 5s or 0s: {e}"),
                )
            })?,
        };
        if delay > MAX_SHUTDOWN {
            return self.err("shutdown_delay", "must be at most 1h");
        }
        let grace = self.duration("shutdown_grace", grace, DEFAULT_SHUTDOWN_GRACE)?;
        if grace > MAX_SHUTDOWN {
            return self.err("shutdown_grace", "must be at most 1h");
        }
        Ok(Shutdown { delay, grace })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    const ROUTE: &str = "routes:\n  - upstream: http://127.0.0.1:1\n";

    fn parse(top: &str) -> Result<(Duration, Duration), String> {
        Config::parse(&format!("{top}{ROUTE}"), Path::new("conf/test.yaml"))
            .map(|c| (c.shutdown_delay, c.shutdown_grace))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_fit_kubernetes_default_termination_grace() {
        let (delay, grace) = parse("").unwrap();
        assert_eq!(
            (delay, grace),
            (DEFAULT_SHUTDOWN_DELAY, DEFAULT_SHUTDOWN_GRACE)
        );
        assert!(delay + grace < Duration::from_secs(30));
    }

    #[test]
    fn each_key_is_read_and_checked() {
        assert_eq!(
            parse("shutdown_delay: 0s\nshutdown_grace: 2m\n").unwrap(),
            (Duration::ZERO, Duration::from_secs(120))
        );
        for (yaml, message) in [
            (
                "shutdown_delay: soon\n",
                "conf/test.yaml: shutdown_delay: 'soon' is not a duration",
            ),
            (
                "shutdown_delay: 2h\n",
                "conf/test.yaml: shutdown_delay: must be at most 1h",
            ),
            (
                "shutdown_grace: 0s\n",
                "conf/test.yaml: shutdown_grace: must be greater than zero",
            ),
            (
                "shutdown_grace: 61m\n",
                "conf/test.yaml: shutdown_grace: must be at most 1h",
            ),
        ] {
            let e = parse(yaml).unwrap_err();
            assert!(e.starts_with(message), "{yaml}: {e}");
        }
    }
}
