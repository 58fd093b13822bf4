//! Logs: `tracing` events on stderr, one line each, plain text or JSON; the level comes from
//! `RUST_LOG` (default `info`), and pingora's `log` records are bridged in.
//!
//! The two line formats are written here rather than by tracing-subscriber's stock formatters.
//! Every request writes an access line, and the stock ones spend more CPU on it than signing the
//! request takes: they style every field name and format every value through `Debug`. These
//! write numbers with `itoa`/`ryu` and strings as they are, escaping only when needed.
//!
//! Plain: `2026-11-24T09:01:02.123456Z  INFO access: request route="orders" method=GET ...`
//! JSON:  `{"timestamp":"...","level":"INFO","target":"access","message":"request","route":...}`

use crate::cli::LogFormat;
use crate::credentials::withhold_credentials;
use crate::utc::{push_padded, Utc};
use std::fmt::{self, Write};
use std::time::SystemTime;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// Whether an event may be logged at all: no level may leak a secret. pingora prints whole
/// request headers (bearer tokens, session tokens) at debug and trace level, from more modules
/// than one can list (`pingora_proxy`, `pingora_core::protocols`, `pingora_core::apps`, …:
/// found by the tests that run at trace and look for secrets in the log). So no pingora crate
/// logs below `info`, whatever `RUST_LOG` says; it is a filter of its own, since in `RUST_LOG`
/// a more specific directive (`pingora_proxy::proxy_h1=debug`) would win over ours.
fn may_log(meta: &tracing::Metadata<'_>) -> bool {
    let krate = meta.target().split("::").next().unwrap_or_default();
    *meta.level() <= Level::INFO || !(krate == "pingora" || krate.starts_with("pingora_"))
}

/// Installs the global subscriber (and the `log` bridge); a second call changes nothing.
/// `verbose` (`-v`): debug for sigproxy's own targets when `RUST_LOG` is not set; pingora's
/// stay at info. `debug_targets` (sigproxy's own, from `--log-signing-process` and the like)
/// log at debug whatever `RUST_LOG` says. The guard on pingora's header-dumping modules
/// ([`may_log`]) applies whatever the level.
pub fn init(format: LogFormat, verbose: bool, debug_targets: &[&str]) {
    let default = if verbose {
        "info,sigproxy=debug"
    } else {
        "info"
    };
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    for target in debug_targets {
        let directive = format!("{target}=debug")
            .parse()
            .expect("a target name is a valid directive");
        filter = filter.add_directive(directive);
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours only for a person at a terminal, never into log files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .event_format(Line {
            json: format == LogFormat::Json,
        })
        .finish()
        .with(tracing_subscriber::filter::filter_fn(may_log))
        .try_init();
}

/// One event as one line. Spans are not printed: sigproxy opens none, and the dependencies
/// that do (hyper, h2) use them only at debug level.
struct Line {
    json: bool,
}

impl<S, N> FormatEvent<S, N> for Line
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // A record bridged from `log` carries its real target and level in its fields.
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        let mut time = String::with_capacity(27);
        timestamp(SystemTime::now(), &mut time);
        let mut fields = Fields {
            out: String::with_capacity(256),
            json: self.json,
            guarded: meta.target().starts_with("aws_"),
        };
        event.record(&mut fields);
        if self.json {
            w.write_str("{\"timestamp\":\"")?;
            w.write_str(&time)?;
            w.write_str("\",\"level\":\"")?;
            w.write_str(meta.level().as_str())?;
            w.write_str("\",\"target\":")?;
            let mut target = String::new();
            json_str(&mut target, meta.target());
            w.write_str(&target)?;
            w.write_str(&fields.out)?;
            w.write_str("}\n")
        } else {
            w.write_str(&time)?;
            write_level(&mut w, meta.level())?;
            w.write_str(meta.target())?;
            w.write_char(':')?;
            w.write_str(&fields.out)?;
            w.write_char('\n')
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
fn timestamp(time: SystemTime, out: &mut String) {
    let t = Utc::from(time);
    t.push_date_time(out, true);
    out.push('.');
    push_padded(out, t.micros, 6);
    out.push('Z');
}

/// ` LEVEL ` right-aligned to five, coloured as tracing-subscriber colours it at a terminal.
fn write_level(w: &mut Writer<'_>, level: &Level) -> fmt::Result {
    let (name, colour) = match *level {
        Level::ERROR => ("ERROR", "31"),
        Level::WARN => (" WARN", "33"),
        Level::INFO => (" INFO", "32"),
        Level::DEBUG => ("DEBUG", "34"),
        Level::TRACE => ("TRACE", "35"),
    };
    if w.has_ansi_escapes() {
        write!(w, " \x1b[{colour}m{name}\x1b[0m ")
    } else {
        w.write_char(' ')?;
        w.write_str(name)?;
        w.write_char(' ')
    }
}

/// Writes an event's fields: ` message key=value ...` (plain) or `,"key":value...` (JSON).
struct Fields {
    out: String,
    json: bool,
    /// An event of the AWS SDK's own (`aws_config`, `aws_smithy_*`, …): see
    /// [`withhold_credentials`].
    guarded: bool,
}

impl Fields {
    /// Starts a field; false for the `log.*` fields of a bridged record (shown as metadata).
    fn key(&mut self, field: &Field) -> bool {
        let name = field.name();
        if name.starts_with("log.") {
            return false;
        }
        if self.json {
            self.out.push(',');
            json_str(&mut self.out, name);
            self.out.push(':');
        } else {
            self.out.push(' ');
            if name != "message" {
                self.out.push_str(name);
                self.out.push('=');
            }
        }
        true
    }

    /// A value that is written as it is in both formats (numbers, booleans).
    fn raw(&mut self, field: &Field, value: &str) {
        if self.key(field) {
            self.out.push_str(value);
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if !self.key(field) {
            return;
        }
        let value = match self.guarded {
            true => withhold_credentials(value),
            false => std::borrow::Cow::Borrowed(value),
        };
        let value = value.as_ref();
        match (self.json, field.name() == "message") {
            (true, _) => json_str(&mut self.out, value),
            (false, true) => push_escaped(&mut self.out, value),
            (false, false) => quoted(&mut self.out, value),
        }
    }

    /// `%value` and `?value`: as formatted, unquoted in plain lines as tracing-subscriber
    /// writes them (`method=GET`), with control characters escaped.
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        if self.json {
            self.record_str(field, &text);
        } else if self.key(field) {
            match self.guarded {
                true => push_escaped(&mut self.out, &withhold_credentials(&text)),
                false => push_escaped(&mut self.out, &text),
            }
        }
    }

    /// An error with its chain of causes: `outer: cause: root cause`.
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let mut text = value.to_string();
        let mut source = value.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        self.record_str(field, &text);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.raw(field, itoa::Buffer::new().format(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.raw(field, itoa::Buffer::new().format(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.raw(field, if value { "true" } else { "false" });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.raw(field, ryu::Buffer::new().format_finite(value));
        } else if self.json {
            self.raw(field, "null");
        } else {
            self.raw(field, &value.to_string());
        }
    }
}

/// Whether `s` can be written between quotes as it is: printable ASCII without `"` or `\`.
fn plain_ascii(s: &str) -> bool {
    s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

/// `s` as a quoted string, escaped as Rust's `Debug` escapes it where needed.
fn quoted(out: &mut String, s: &str) {
    if plain_ascii(s) {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        let _ = write!(out, "{s:?}");
    }
}

/// `s` unquoted, with control characters (a terminal's escape sequences, a forged line break)
/// escaped.
fn push_escaped(out: &mut String, s: &str) {
    if !s.chars().any(char::is_control) {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
}

/// `s` as a JSON string.
fn json_str(out: &mut String, s: &str) {
    if plain_ascii(s) {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&serde_json::Value::from(s).to_string());
    }
}

#[cfg(test)]
#[path = "logging_tests.rs"]
mod tests;
