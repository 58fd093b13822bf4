//! Validation of a route's upstream options: `sign_host`, `headers`, `tls` and
//! `upstream_idle_timeout`.

use super::check::{word_char, Checker};
use super::file;
use super::ConfigError;
use crate::upstream::edits::{owned_by_sigproxy, HeaderEdits};
use crate::upstream::{load_ca_file, UpstreamTls, DEFAULT_IDLE_TIMEOUT};
use http::header::{HeaderName, HeaderValue};
use std::time::Duration;
use tracing::warn;

/// A route's upstream options, checked.
pub(super) struct UpstreamOptions {
    pub sign_host: Option<String>,
    pub header_edits: HeaderEdits,
    pub tls: UpstreamTls,
    pub idle_timeout: Duration,
}

impl Checker<'_> {
    /// `key` is the route's (`routes[2]`); `name` its name, for the start-up warning.
    pub(super) fn upstream_options(
        &self,
        key: &str,
        name: &str,
        sign_host: Option<String>,
        headers: Option<file::Headers>,
        tls: Option<file::Tls>,
        idle_timeout: Option<String>,
    ) -> Result<UpstreamOptions, ConfigError> {
        if let Some(host) = &sign_host {
            if !is_host(host) {
                return self.err(
                    format!("{key}.sign_host"),
                    format!("'{host}' is not a host name (with an optional :port)"),
                );
            }
        }
        let header_edits = match headers {
            None => HeaderEdits::default(),
            Some(h) => self.header_edits(&format!("{key}.headers"), h)?,
        };
        let tls = match tls {
            None => UpstreamTls::default(),
            Some(t) => self.tls(&format!("{key}.tls"), name, t)?,
        };
        let idle_timeout = self.duration(
            &format!("{key}.upstream_idle_timeout"),
            idle_timeout.as_deref(),
            DEFAULT_IDLE_TIMEOUT,
        )?;
        Ok(UpstreamOptions {
            sign_host: sign_host.map(|h| h.to_ascii_lowercase()),
            header_edits,
            tls,
            idle_timeout,
        })
    }

    fn header_edits(&self, key: &str, raw: file::Headers) -> Result<HeaderEdits, ConfigError> {
        let file::Headers {
            add,
            remove,
            duplicate,
        } = raw;
        let name = |key: String, text: &str| -> Result<HeaderName, ConfigError> {
            let name = HeaderName::from_bytes(text.trim().as_bytes())
                .or_else(|_| self.err(&key, format!("'{text}' is not a header name")))?;
            match owned_by_sigproxy(&name) {
                Some(why) => self.err(key, format!("'{text}' cannot be edited: {why}")),
                None => Ok(name),
            }
        };
        let mut edits = HeaderEdits::default();
        // Any header may be copied (`authorization`, to hand the client's own to the upstream;
        // sigproxy's bearer token is gone by then): the copy is a new name nobody reads.
        for (i, text) in duplicate.unwrap_or_default().iter().enumerate() {
            let key = format!("{key}.duplicate[{i}]");
            let n = HeaderName::from_bytes(text.trim().as_bytes())
                .or_else(|_| self.err(&key, format!("'{text}' is not a header name")))?;
            let original = HeaderName::from_bytes(format!("x-original-{}", n.as_str()).as_bytes())
                .or_else(|_| self.err(&key, format!("'{text}' is not a header name")))?;
            edits.duplicate.push((n, original));
        }
        for (i, text) in remove.unwrap_or_default().iter().enumerate() {
            edits.remove.push(name(format!("{key}.remove[{i}]"), text)?);
        }
        for (text, value) in add.unwrap_or_default() {
            let key = format!("{key}.add.{text}");
            let n = name(key.clone(), &text)?;
            let value = HeaderValue::from_str(&value)
                .ok()
                .filter(|v| v.as_bytes().iter().all(|b| (0x20..0x7f).contains(b)))
                .map_or_else(|| self.err(&key, "the value must be printable ASCII"), Ok)?;
            edits.add.push((n, value));
        }
        Ok(edits)
    }

    fn tls(&self, key: &str, route: &str, raw: file::Tls) -> Result<UpstreamTls, ConfigError> {
        let file::Tls {
            ca_file,
            server_name,
            insecure_skip_verify,
        } = raw;
        let insecure_skip_verify = insecure_skip_verify.unwrap_or(false);
        if insecure_skip_verify && ca_file.is_some() {
            return self.err(
                format!("{key}.insecure_skip_verify"),
                "skipping verification makes ca_file pointless: choose one",
            );
        }
        let ca = match ca_file {
            None => None,
            Some(path) => {
                Some(load_ca_file(&path).or_else(|why| self.err(format!("{key}.ca_file"), why))?)
            }
        };
        if let Some(name) = &server_name {
            if !is_host(name) || name.contains(':') {
                return self.err(
                    format!("{key}.server_name"),
                    format!("'{name}' is not a host name"),
                );
            }
        }
        if insecure_skip_verify {
            warn!(
                route,
                "tls.insecure_skip_verify: the upstream's certificate is not checked; anyone on \
                 the path can read and change this route's traffic"
            );
        }
        Ok(UpstreamTls {
            ca,
            server_name,
            insecure_skip_verify,
        })
    }
}

/// A DNS name or address, with an optional port: what a `Host` header may say.
fn is_host(text: &str) -> bool {
    let (host, port) = match text.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, Some(p)),
        _ => (text, None),
    };
    !host.is_empty()
        && host.len() <= 253
        && host.chars().all(|c| word_char(c, "-._"))
        && port.is_none_or(|p| p.parse::<u16>().is_ok())
}
