//! Route matching, the upstream target and the allow-list check on any host, path, method and
//! pattern: no panics, targets always start with '/', and a path pattern never matches a path
//! it does not cover literally where it has no stars.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigproxy::access::PathPattern;
use sigproxy::config::Config;
use sigproxy::credentials::CredentialStore;
use sigproxy::route::Router;
use std::path::Path;
use std::sync::OnceLock;

const CONFIG: &str = r#"
credentials:
  app: { source: default }
routes:
  - name: by-host
    match: { host: orders.internal }
    upstream: http://127.0.0.1:1
  - name: reports
    match: { path_prefix: /s3/ }
    strip_prefix: true
    upstream: http://127.0.0.1:2/base
    service: s3
    region: us-east-1
    credentials: app
    allow:
      - methods: [GET, HEAD]
        paths: ["/base/bucket/reports/**", "/base/*/public/*.csv"]
  - name: fn
    match: { path_prefix: /fn/ }
    strip_prefix: true
    upstream: http://127.0.0.1:3
    service: lambda
    region: us-east-1
    credentials: app
    allow:
      - paths: ["/api/**"]
  - name: fallback
    upstream: http://127.0.0.1:4
"#;

fn router() -> &'static Router {
    static ROUTER: OnceLock<Router> = OnceLock::new();
    ROUTER.get_or_init(|| {
        let config = Config::parse(CONFIG, Path::new("fuzz.yaml")).unwrap();
        let store = CredentialStore::new(&config);
        Router::new(&config, &store)
    })
}

fuzz_target!(|input: (&str, &str, &str, &str, &[u8])| {
    let (host, path, query, pattern, text) = input;
    let methods = [http::Method::GET, http::Method::PUT, http::Method::DELETE];
    let query = (!query.is_empty()).then_some(query);
    let found = router().find(Some(host), path);
    if let Ok(found) = found {
        let (route, resolved) = found.expect("the fallback route matches everything");
        if let Ok(target) = route.target(&resolved, query) {
            assert!(target.starts_with('/'), "{target}");
            assert!(target.is_ascii(), "{target}");
            let mut headers = http::HeaderMap::new();
            if let Ok(source) = http::HeaderValue::from_str(query.unwrap_or(path)) {
                headers.insert("x-amz-copy-source", source);
            }
            for method in &methods {
                let _ = route.permits(method, &target, &headers);
                let _ = route.permits(method, &target, &http::HeaderMap::new());
            }
        }
    }
    if let Ok(pattern) = PathPattern::parse(pattern) {
        let matched = pattern.matches(text);
        let literal = pattern.as_str();
        if !literal.contains('*') {
            assert_eq!(matched, literal.as_bytes() == text);
        }
        // `/**` covers every path but the root: a star never matches nothing.
        if literal == "/**" {
            assert_eq!(matched, text.starts_with(b"/") && text.len() > 1);
        }
    }
});
