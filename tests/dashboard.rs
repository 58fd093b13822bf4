//! The Grafana dashboard (deploy/grafana/sigproxy.json) and the alert rules
//! (deploy/kubernetes/monitoring/prometheusrule.yaml) query only metrics sigproxy exports: every
//! metric name in their PromQL is checked against the `# TYPE` lines of a running sigproxy's
//! `/metrics`, after traffic that makes every family appear.

mod common;

use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Clauses whose parenthesised list holds label names, not series.
const LABEL_LISTS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// Other PromQL words that look like metric names but are not: set operators, modifiers,
/// literals. (The clauses above are not metric names either.)
const KEYWORDS: &[&str] = &[
    "bool", "and", "or", "unless", "offset", "inf", "nan", "atan2",
];

/// The metric names a PromQL expression selects (as written: `x_bucket` stays `x_bucket`).
/// Grafana's `label_values(selector, label)` is read as its selector. Strings, label matchers,
/// ranges, Grafana variables, functions, numbers and label lists are not names.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let expr = expr.trim();
    let expr = match expr
        .strip_prefix("label_values(")
        .and_then(|e| e.strip_suffix(')'))
    {
        // `label_values(label)` names no metric.
        Some(args) => args
            .rsplit_once(',')
            .map_or("", |(selector, _label)| selector),
        None => expr,
    };
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    // The previous word, to know that a `(` opens a label list.
    let mut previous_word = String::new();
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => {
                // A string: skip to its closing quote (backslash escapes, except in raw strings).
                i += 1;
                while i < chars.len() && chars[i] != c {
                    i += if chars[i] == '\\' && c != '`' { 2 } else { 1 };
                }
                i += 1;
            }
            '{' | '[' => {
                // Label matchers or a range/subquery duration: skip, strings included.
                let close = if c == '{' { '}' } else { ']' };
                let mut quote = None;
                while i < chars.len() {
                    match (quote, chars[i]) {
                        (None, '"' | '\'' | '`') => quote = Some(chars[i]),
                        (Some(q), ch) if ch == q => quote = None,
                        (Some(_), '\\') => i += 1,
                        (None, ch) if ch == close => break,
                        _ => {}
                    }
                    i += 1;
                }
                i += 1;
            }
            '(' if LABEL_LISTS.contains(&previous_word.as_str()) => {
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
                i += 1;
                previous_word.clear();
            }
            '$' => {
                // A Grafana variable: $name, ${name} or ${name:format}.
                i += 1;
                if chars.get(i) == Some(&'{') {
                    while i < chars.len() && chars[i] != '}' {
                        i += 1;
                    }
                    i += 1;
                } else {
                    while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                        i += 1;
                    }
                }
            }
            c if c.is_ascii_digit()
                || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) =>
            {
                // A number or a duration (0.99, 1e3, 5m, 1h30m): digits, dots and letters.
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut next = i;
                while next < chars.len() && chars[next].is_whitespace() {
                    next += 1;
                }
                // A function call, or an aggregation with its clause first: `sum by (x) (...)`.
                let rest: String = chars[next..chars.len().min(next + 8)].iter().collect();
                let clause = ["by", "without"].iter().any(|k| {
                    rest.to_ascii_lowercase()
                        .strip_prefix(k)
                        .is_some_and(|after| {
                            after
                                .chars()
                                .next()
                                .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'))
                        })
                });
                let is_call = chars.get(next) == Some(&'(') || clause;
                let lower = word.to_ascii_lowercase();
                if !is_call
                    && !KEYWORDS.contains(&lower.as_str())
                    && !LABEL_LISTS.contains(&lower.as_str())
                {
                    names.insert(word.clone());
                }
                previous_word = lower;
                continue;
            }
            _ => i += 1,
        }
        if !c.is_whitespace() {
            previous_word.clear();
        }
    }
    names
}

#[test]
fn metric_names_skip_functions_labels_keywords_and_variables() {
    let names = |e| metric_names(e).into_iter().collect::<Vec<_>>();
    assert_eq!(
        names(
            r#"histogram_quantile(0.99, sum by (route, le) (rate(a_seconds_bucket{job=~"$job", code=~"5.."}[$__rate_interval])))"#
        ),
        ["a_seconds_bucket"]
    );
    assert_eq!(
        names(
            "sum without(instance) (rate(x_total{a=\"}b\"}[5m] offset 1h)) / on (job) group_left(version) y_info > bool 0.5 and ignoring(le) z unless w"
        ),
        ["w", "x_total", "y_info", "z"]
    );
    assert_eq!(
        names(r#"label_values(sigproxy_build_info{job=~"$job"}, instance)"#),
        ["sigproxy_build_info"]
    );
    assert_eq!(names("label_values(job)"), Vec::<String>::new());
    assert_eq!(
        names(r#"-sum(rate(b_total[1h30m])) * 1e3 + time() - c:recorded:rate5m"#),
        ["b_total", "c:recorded:rate5m"]
    );
    assert_eq!(
        names(r#"label_replace(up, "dst", "$1", "src", "(.*)") or vector(0)"#),
        ["up"]
    );
}

/// Every PromQL expression in the dashboard: panel targets and template variable queries.
fn dashboard_exprs(dashboard: &Value) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("expr" | "definition", Value::String(s)) => out.push(s.clone()),
                        _ => walk(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    for var in dashboard["templating"]["list"].as_array().unwrap() {
        if var["type"] == "query" {
            out.push(var["query"].as_str().unwrap().to_string());
            out.push(var["definition"].as_str().unwrap().to_string());
        }
    }
    out
}

/// Every alert's expression in the PrometheusRule.
fn rule_exprs() -> Vec<(String, String)> {
    let path = repo_root().join("deploy/kubernetes/monitoring/prometheusrule.yaml");
    let rule: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(rule["kind"].as_str(), Some("PrometheusRule"));
    let mut out = Vec::new();
    for group in rule["spec"]["groups"].as_sequence().unwrap() {
        for r in group["rules"].as_sequence().unwrap() {
            let name = r["alert"].as_str().unwrap().to_string();
            out.push((name, r["expr"].as_str().unwrap().to_string()));
        }
    }
    out
}

fn load_dashboard() -> Value {
    let text = std::fs::read_to_string(repo_root().join("deploy/grafana/sigproxy.json")).unwrap();
    serde_json::from_str(&text).expect("deploy/grafana/sigproxy.json is JSON")
}

#[test]
fn dashboard_has_its_variables_and_every_panel_uses_them() {
    let dashboard = load_dashboard();
    let vars: BTreeMap<&str, &Value> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["name"].as_str().unwrap(), v))
        .collect();
    assert_eq!(vars["datasource"]["type"], "datasource");
    assert_eq!(vars["datasource"]["query"], "prometheus");
    for name in ["job", "instance", "route"] {
        assert_eq!(vars[name]["type"], "query", "{name}");
        assert_eq!(vars[name]["datasource"]["uid"], "${datasource}", "{name}");
    }
    let panels = dashboard["panels"].as_array().unwrap();
    let mut targets = 0;
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        let title = panel["title"].as_str().unwrap();
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            assert_eq!(target["datasource"]["uid"], "${datasource}", "{title}");
            assert!(
                expr.contains(r#"job=~"$job""#) && expr.contains(r#"instance=~"$instance""#),
                "{title}: {expr}"
            );
            targets += 1;
        }
    }
    assert!(targets >= 25, "{targets} queries");
    // No two panels overlap on Grafana's 24-column grid.
    let mut cells = BTreeSet::new();
    for p in panels {
        let g = &p["gridPos"];
        let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| g[k].as_u64().unwrap());
        assert!(x + w <= 24, "{}", p["title"]);
        for cell in (x..x + w).flat_map(|cx| (y..y + h).map(move |cy| (cx, cy))) {
            assert!(cells.insert(cell), "{} overlaps at {cell:?}", p["title"]);
        }
    }
}

/// `# TYPE name kind` lines of a scrape.
/// The families a sigproxy with an HTTPS traffic listener exports (the TLS certificate
/// metrics; the harness's proxy above speaks plain HTTP), from a second sigproxy serving a
/// certificate tests/peers/tls_tool.py makes.
fn https_families() -> BTreeMap<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    tls_tool(&[
        serde_json::json!({"op": "ca", "dir": dir.path()}),
        serde_json::json!({"op": "cert", "cert": cert, "key": key, "serial": 1}),
    ]);
    let config = format!(
        "tls:\n  cert_file: {}\n  key_file: {}\nroutes:\n  - upstream: http://127.0.0.1:{}\n",
        cert.display(),
        key.display(),
        free_port()
    );
    let proxy = Proxy::start_ready(&config, &[]);
    exported_types(&String::from_utf8(proxy.admin_get("/metrics").body).unwrap())
}

fn exported_types(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(name, kind)| (name.to_string(), kind.trim().to_string()))
        .collect()
}

/// The family a series name belongs to: itself, or a histogram's for its `_bucket`, `_sum`
/// and `_count` series. `None` when sigproxy exports no such series.
fn family_of<'a>(name: &'a str, types: &BTreeMap<String, String>) -> Option<&'a str> {
    match types.get(name).map(String::as_str) {
        // A histogram's own name is no series: one of its suffixes is.
        Some("histogram") => None,
        Some(_) => Some(name),
        None => ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
            let base = name.strip_suffix(suffix)?;
            (types.get(base).map(String::as_str) == Some("histogram")).then_some(base)
        }),
    }
}

#[test]
fn every_dashboard_and_alert_query_names_metrics_sigproxy_exports() {
    let peers = Peers::start();
    let closed = free_port();
    // The credential endpoint on, so that its request counter is exported too.
    let endpoint = free_port();
    let lambda = peers.get("lambda_url");
    let config = format!(
        "credential_endpoint:\n  listen: 127.0.0.1:{endpoint}\n  credentials: app\n  authorization_token_env: DASHBOARD_ENDPOINT_TOKEN\ncredentials:\n{}{}routes:\n  - name: fn\n    match: {{ path_prefix: /fn/ }}\n    strip_prefix: true\n    upstream: {lambda}\n    service: lambda\n    region: us-east-1\n    credentials: app\n    read_timeout: 1s\n  - name: down\n    match: {{ path_prefix: /down/ }}\n    upstream: http://127.0.0.1:{closed}\n    service: lambda\n    region: us-east-1\n    credentials: app\n  - name: unsigned\n    match: {{ path_prefix: /unsigned/ }}\n    upstream: {lambda}\n    service: lambda\n    region: us-east-1\n    credentials: bad\n  - name: readonly\n    match: {{ path_prefix: /readonly/ }}\n    strip_prefix: true\n    upstream: {lambda}\n    service: lambda\n    region: us-east-1\n    credentials: app\n    allow:\n      - methods: [GET]\n",
        peers.credentials_yaml("app", peers.get("external_id")),
        peers.credentials_yaml("bad", "wrong-external-id"),
    );
    let mut env = peers.caller_env();
    env.push((
        "DASHBOARD_ENDPOINT_TOKEN".into(),
        "dashboard-endpoint-token-0123".into(),
    ));
    let proxy = Proxy::start(&config, &env);
    // Not ready (set `bad` never gets credentials), but `app` serves.
    for (set, result) in [("app", "success"), ("bad", "failure")] {
        proxy.wait_for_metric(
            "sigproxy_credential_refreshes_total",
            &[("credentials", set), ("result", result)],
        );
    }

    // Traffic that makes each family appear: answers, bytes, an upstream error, a signing
    // error, a refusal by access control, a retry with fresh credentials, a refused head.
    assert_eq!(proxy.send("POST", "/fn/a", &[], &bytes(1000)).status, 200);
    assert_eq!(proxy.get("/down/x").status, 502);
    assert_eq!(proxy.get("/unsigned/x").status, 503);
    assert_eq!(proxy.send("DELETE", "/readonly/x", &[], b"").status, 403);
    let expired = request(
        peers.lambda_addr(),
        "POST",
        "/__control/expire-keys",
        &[],
        b"",
    );
    assert_eq!(expired.status, 200);
    assert_eq!(proxy.get("/fn/after-expiry").status, 200);
    // A head over max_header_bytes (64 KiB); sigproxy may answer before reading it all, so a
    // write error is no failure.
    let mut conn = TcpStream::connect(proxy.addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut head = b"GET /fn/x HTTP/1.1\r\nHost: localhost\r\nX-Pad: ".to_vec();
    head.extend(vec![b'a'; 70 * 1024]);
    let _ = conn.write_all(&head);
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer);
    assert!(
        answer.starts_with(b"HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    for (name, labels) in [
        (
            "sigproxy_denied_requests_total",
            &[("route", "readonly"), ("reason", "method")][..],
        ),
        (
            "sigproxy_upstream_retries_total",
            &[("route", "fn"), ("reason", "expired_token")][..],
        ),
        (
            "sigproxy_request_heads_refused_total",
            &[("reason", "too_large")][..],
        ),
        (
            "sigproxy_signing_errors_total",
            &[("route", "unsigned")][..],
        ),
    ] {
        proxy.wait_for_metric(name, labels);
    }

    let scrape = String::from_utf8(proxy.admin_get("/metrics").body).unwrap();
    let mut types = exported_types(&scrape);
    let https = https_families();
    assert!(
        https.contains_key("sigproxy_tls_certificate_expiry_timestamp_seconds"),
        "{https:?}"
    );
    types.extend(https);
    assert!(types.len() >= 20, "{scrape}");

    let mut queries: Vec<(String, String)> = dashboard_exprs(&load_dashboard())
        .into_iter()
        .map(|e| ("dashboard".to_string(), e))
        .collect();
    let rules = rule_exprs();
    assert_eq!(rules.len(), 6, "{rules:?}");
    queries.extend(rules);

    let mut used = BTreeSet::new();
    let mut unknown = Vec::new();
    for (source, expr) in &queries {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{source}: no metric in {expr}");
        for name in names {
            match family_of(&name, &types) {
                Some(family) => {
                    used.insert((source == "dashboard", family.to_string()));
                }
                None => unknown.push(format!("{source}: {name} in {expr}")),
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "not exported by sigproxy:\n{}\n\nexported: {:?}",
        unknown.join("\n"),
        types.keys().collect::<Vec<_>>()
    );

    // What the dashboard must show (issue 15): each of these families is drawn.
    let drawn: BTreeSet<&str> = used
        .iter()
        .filter(|(dashboard, _)| *dashboard)
        .map(|(_, family)| family.as_str())
        .collect();
    for family in [
        "sigproxy_requests_total",
        "sigproxy_request_duration_seconds",
        "sigproxy_upstream_duration_seconds",
        "sigproxy_request_bytes_total",
        "sigproxy_response_bytes_total",
        "sigproxy_requests_in_flight",
        "sigproxy_credentials_expiry_timestamp_seconds",
        "sigproxy_credential_refreshes_total",
        "sigproxy_denied_requests_total",
        "sigproxy_upstream_retries_total",
        "sigproxy_upstream_errors_total",
        "sigproxy_config_reloads_total",
        "sigproxy_config_last_reload_success_timestamp_seconds",
        "sigproxy_tls_certificate_expiry_timestamp_seconds",
        "sigproxy_tls_certificate_reloads_total",
        "sigproxy_client_write_timeouts_total",
        "sigproxy_request_body_timeouts_total",
    ] {
        assert!(drawn.contains(family), "the dashboard draws no {family}");
    }
    // Every exported family is on the dashboard.
    let missing: Vec<&String> = types
        .keys()
        .filter(|f| !drawn.contains(f.as_str()))
        .collect();
    assert!(missing.is_empty(), "not on the dashboard: {missing:?}");
}
