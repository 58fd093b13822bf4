use super::*;

fn parse(yaml: &str) -> Result<Config, ConfigError> {
    Config::parse(yaml, Path::new("conf/test.yaml"))
}

fn error(yaml: &str) -> String {
    parse(yaml).unwrap_err().to_string()
}

const FULL: &str = r#"
listen: 127.0.0.1:8080
admin_listen: 127.0.0.1:9901
credentials:
  app:
    source: default
    assume_role:
      role_arn: arn:aws:iam::123456789012:role/app
      session_name: sigproxy
      external_id: ext-123
      duration_seconds: 3600
routes:
  - name: orders
    match: { path_prefix: /orders/ }
    strip_prefix: true
    upstream: https://abc123.lambda-url.us-east-1.on.aws
    credentials: app
    max_body_bytes: 6291456
  - name: open
    upstream: http://127.0.0.1:9000
"#;

#[test]
fn full_example_parses_with_inferred_service_and_region() {
    let c = parse(FULL).unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    let orders = &c.routes[0];
    let signing = orders.signing.as_ref().unwrap();
    assert_eq!(signing.service, Service::Lambda);
    assert_eq!(signing.region, "us-east-1");
    assert_eq!(signing.credentials, "app");
    assert_eq!(orders.max_body_bytes, 6_291_456);
    assert!(
        c.routes[1].signing.is_none(),
        "no credentials: pass-through"
    );
    let role = &c.credentials["app"].assume_role[0];
    assert_eq!(role.duration, Duration::from_secs(3600));
    assert_eq!(role.external_id.as_deref(), Some("ext-123"));
}

#[test]
fn defaults_are_loopback_and_lambda_sized() {
    let c = parse("routes:\n  - upstream: http://127.0.0.1:1\n").unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.admin_listen.unwrap().to_string(), "127.0.0.1:9901");
    assert_eq!(c.routes[0].max_body_bytes, DEFAULT_MAX_BODY_BYTES);
    assert_eq!(c.routes[0].connect_timeout, Duration::from_secs(5));
    assert_eq!(c.routes[0].name, "route0");
}

#[test]
fn default_session_name_is_valid_for_sts() {
    let name = default_session_name();
    assert!(name.starts_with("sigproxy"), "{name}");
    assert!(valid_session_name(&name), "{name}");
}

#[test]
fn errors_name_file_key_and_reason() {
    let cases: &[(&str, &str)] = &[
        (
            "routes:\n  - upstream: ftp://x\n",
            "conf/test.yaml: routes[0].upstream: scheme 'ftp' is not http or https",
        ),
        (
            "routes:\n  - upstream: http://127.0.0.1:1\n    credentials: nope\n",
            "conf/test.yaml: routes[0].credentials: no credential set named 'nope'",
        ),
        (
            "credentials:\n  a:\n    assume_role:\n      role_arn: arn:aws:iam::123456789012:role/x\n      duration_seconds: 60\nroutes:\n  - upstream: http://127.0.0.1:1\n",
            "conf/test.yaml: credentials.a.assume_role.duration_seconds: 60 is outside",
        ),
        (
            "credentials:\n  a:\n    assume_role:\n      role_arn: role/x\nroutes:\n  - upstream: http://127.0.0.1:1\n",
            "credentials.a.assume_role.role_arn: 'role/x' is not an IAM role ARN",
        ),
        (
            "credentials:\n  a: {}\nroutes:\n  - upstream: http://127.0.0.1:1\n    credentials: a\n",
            "routes[0].upstream: '127.0.0.1' is not an AWS endpoint sigproxy knows; set service and region",
        ),
        (
            "credentials:\n  a: {}\nroutes:\n  - upstream: http://127.0.0.1:1\n    credentials: a\n    service: lambda\n",
            "routes[0].region: cannot be inferred",
        ),
        (
            "routes:\n  - upstream: http://127.0.0.1:1\n    service: lambda\n",
            "routes[0].credentials: is required when service, region, payload, signing or region_set is set",
        ),
        (
            "routes:\n  - name: a\n    upstream: http://127.0.0.1:1\n  - name: a\n    upstream: http://127.0.0.1:2\n",
            "routes[1].name: duplicate route name 'a'",
        ),
        ("routes: []\n", "conf/test.yaml: routes: at least one route is required"),
        (
            "routes:\n  - upstream: http://127.0.0.1:1\n    read_timeout: soon\n",
            "routes[0].read_timeout: 'soon' is not a duration",
        ),
        (
            "routes:\n  - upstream: http://127.0.0.1:1\n    max_body_bytes: 999999999999\n",
            "routes[0].max_body_bytes: 999999999999 is above",
        ),
        (
            "listen: localhost\nroutes:\n  - upstream: http://127.0.0.1:1\n",
            "conf/test.yaml: listen: 'localhost' is not an IP address and port",
        ),
        (
            "admin_listen: 127.0.0.1:0\nroutes:\n  - upstream: http://127.0.0.1:1\n",
            "conf/test.yaml: admin_listen: '127.0.0.1:0': port 0 would listen on a port the system picks",
        ),
        (
            "credentials:\n  a: {}\ncredential_endpoint:\n  listen: '[::1]:0'\n  credentials: a\nroutes:\n  - upstream: http://127.0.0.1:1\n",
            "credential_endpoint.listen: '[::1]:0': port 0 would listen",
        ),
        (
            "credentials:\n  a: {}\nroutes:\n  - upstream: https://abc.lambda-url.us-east-1.on.aws\n    credentials: a\n    payload: streaming\n",
            "routes[0].payload: 'streaming' payloads are for S3 only; lambda needs 'signed'",
        ),
        (
            "credentials:\n  a: {}\nroutes:\n  - upstream: https://s3.us-east-1.amazonaws.com\n    credentials: a\n    payload: chunky\n",
            "routes[0].payload: unknown payload mode 'chunky'",
        ),
        (
            "routes:\n  - upstream: http://127.0.0.1:1\n    strip_prefix: true\n",
            "routes[0].strip_prefix: needs match.path_prefix",
        ),
    ];
    for (yaml, want) in cases {
        let got = error(yaml);
        assert!(got.contains(want), "\nwant: {want}\ngot:  {got}");
    }
}

#[test]
fn unknown_keys_are_errors_with_their_location() {
    let got = error("routes:\n  - upstream: http://127.0.0.1:1\n    upstrem_typo: 1\n");
    assert!(got.starts_with("conf/test.yaml: line 3 column"), "{got}");
    assert!(got.contains("unknown field `upstrem_typo`"), "{got}");
}

#[test]
fn missing_file_is_a_clear_error() {
    let e = Config::load(Path::new("/nonexistent/sigproxy.yaml")).unwrap_err();
    assert!(e
        .to_string()
        .starts_with("/nonexistent/sigproxy.yaml: cannot read the file"));
}

#[test]
fn s3_payload_defaults_follow_the_transport() {
    let c = parse(
        "credentials:\n  a: {}\nroutes:\n  - upstream: https://b.s3.us-east-1.amazonaws.com\n    match: { path_prefix: /a/ }\n    credentials: a\n  - upstream: http://127.0.0.1:9000\n    match: { path_prefix: /b/ }\n    service: s3\n    region: us-east-1\n    credentials: a\n  - upstream: https://s3.us-east-1.amazonaws.com\n    credentials: a\n    payload: signed\n",
    )
    .unwrap();
    let modes: Vec<Payload> = c
        .routes
        .iter()
        .map(|r| r.signing.as_ref().unwrap().payload)
        .collect();
    assert_eq!(
        modes,
        [Payload::Unsigned, Payload::Streaming, Payload::Signed]
    );
    assert_eq!(c.routes[0].signing.as_ref().unwrap().service, Service::S3);
}

#[test]
fn roles_can_be_chained_within_the_one_hour_limit() {
    let chain = "credentials:\n  c:\n    assume_role:\n      - role_arn: arn:aws:iam::123456789012:role/a\n        duration_seconds: 7200\n      - role_arn: arn:aws:iam::123456789012:role/b\nroutes:\n  - upstream: http://127.0.0.1:1\n";
    let c = parse(chain).unwrap();
    let roles = &c.credentials["c"].assume_role;
    assert_eq!(roles.len(), 2);
    assert_eq!(
        roles[0].duration,
        Duration::from_secs(7200),
        "the first hop is not chained"
    );
    assert_eq!(roles[1].duration, Duration::from_secs(3600));
    let too_long = chain.replace("role/b\n", "role/b\n        duration_seconds: 7200\n");
    assert!(error(&too_long).contains(
        "credentials.c.assume_role[1].duration_seconds: 7200 is over 3600: AWS caps sessions of chained roles at one hour"
    ), "{}", error(&too_long));
}

#[test]
fn sts_token_sources_are_checked() {
    let base = "routes:\n  - upstream: http://127.0.0.1:1\n";
    let ok = format!("credentials:\n  b:\n    federation_token:\n      name: broker\n      policy: '{{\"Version\":\"2012-10-17\"}}'\n      duration_seconds: 7200\n{base}");
    let c = parse(&ok).unwrap();
    let token = c.credentials["b"].sts_token.as_ref().unwrap();
    assert_eq!(token.duration, Duration::from_secs(7200));
    assert!(matches!(token.kind, StsTokenKind::Federation { ref name, .. } if name == "broker"));
    let cases = [
        ("    federation_token: {}\n", "credentials.b.federation_token.name: is required"),
        ("    federation_token: { name: b, policy: 'not json' }\n", "credentials.b.federation_token.name: must be 2-32"),
        ("    federation_token: { name: broker, policy: 'not json' }\n", "credentials.b.federation_token.policy: is not JSON"),
        ("    session_token: { name: x }\n", "credentials.b.session_token.name: only federation_token takes a name"),
        ("    session_token: {}\n    federation_token: { name: broker }\n", "session_token and federation_token exclude each other"),
        ("    session_token: { duration_seconds: 200000 }\n", "credentials.b.session_token.duration_seconds: 200000 is outside"),
        ("    session_token: { sts_region: 'EU West' }\n", "credentials.b.session_token.sts_region: 'EU West' is not a region name"),
        ("    session_token: {}\n    assume_role: { role_arn: 'arn:aws:iam::123456789012:role/r' }\n", "credentials.b.assume_role: cannot be combined"),
    ];
    for (set, want) in cases {
        let got = error(&format!("credentials:\n  b:\n{set}{base}"));
        assert!(got.contains(want), "\nwant: {want}\ngot:  {got}");
    }
}

#[test]
fn mfa_is_checked() {
    let base = "routes:\n  - upstream: http://127.0.0.1:1\n";
    let serial = "arn:aws:iam::123456789012:mfa/alice";
    let ok = format!("credentials:\n  m:\n    session_token:\n      mfa:\n        serial_number: {serial}\n        token_command: [ykman, oath, accounts, code, -s, 'AWS:alice']\n{base}");
    let c = parse(&ok).unwrap();
    let token = c.credentials["m"].sts_token.as_ref().unwrap();
    // STS's own default for MFA sessions: 12 hours.
    assert_eq!(token.duration, Duration::from_secs(43_200));
    let mfa = c.credentials["m"].mfa().unwrap();
    assert_eq!(mfa.serial_number, serial);
    assert_eq!(mfa.token_command.as_ref().unwrap()[5], "AWS:alice");
    assert!(mfa.withheld_env.is_empty());
    // The variables the file reads tokens from are kept from the command.
    std::env::set_var("MFA_CONFIG_TEST_TOKEN", "mfa-config-test-token-0123456789");
    let tokens = "access:\n  bearer_token_env: MFA_CONFIG_TEST_TOKEN\n";
    let with_tokens = parse(&format!("{tokens}{ok}")).unwrap();
    let mfa = with_tokens.credentials["m"].mfa().unwrap();
    assert_eq!(mfa.withheld_env, ["MFA_CONFIG_TEST_TOKEN"]);
    // The same set all the same: a reload that changes only tokens starts no new session.
    assert_eq!(with_tokens.credentials["m"], c.credentials["m"]);
    let role = format!("credentials:\n  m:\n    assume_role:\n      - role_arn: arn:aws:iam::123456789012:role/a\n        mfa: {{ serial_number: GAHT12345678 }}\n      - role_arn: arn:aws:iam::123456789012:role/b\n{base}");
    let c = parse(&role).unwrap();
    assert_eq!(
        c.credentials["m"].assume_role[0].duration,
        Duration::from_secs(3600)
    );
    assert!(c.credentials["m"].mfa().unwrap().token_command.is_none());
    let cases = [
        (format!("    federation_token: {{ name: broker, mfa: {{ serial_number: {serial} }} }}\n"), "credentials.m.federation_token.mfa: STS GetFederationToken takes no MFA code"),
        ("    session_token: { mfa: { serial_number: 'arn:aws:iam::123456789012:user/alice' } }\n".into(), "credentials.m.session_token.mfa.serial_number: 'arn:aws:iam::123456789012:user/alice' is neither an MFA device ARN"),
        ("    session_token: { mfa: { token_command: [ykman] } }\n".into(), "credentials.m.session_token.mfa.serial_number: is required"),
        (format!("    session_token: {{ mfa: {{ serial_number: {serial}, token_command: 'ykman oath accounts code' }} }}\n"), "credentials.m.session_token.mfa.token_command: must be a list of arguments, run without a shell"),
        (format!("    session_token: {{ mfa: {{ serial_number: {serial}, token_command: [] }} }}\n"), "credentials.m.session_token.mfa.token_command: names no program"),
        (format!("    session_token: {{ mfa: {{ serial_number: {serial}, shell: true }} }}\n"), "unknown field `shell`"),
        (format!("    assume_role:\n      - role_arn: arn:aws:iam::123456789012:role/a\n      - role_arn: arn:aws:iam::123456789012:role/b\n        mfa: {{ serial_number: {serial} }}\n"), "credentials.m.assume_role[1].mfa: only the first role of a chain may have one"),
    ];
    for (set, want) in cases {
        let got = error(&format!("credentials:\n  m:\n{set}{base}"));
        assert!(got.contains(want), "\nwant: {want}\ngot:  {got}");
        assert!(got.starts_with("conf/test.yaml: "), "{got}");
    }
}

const ROUTE: &str = "routes:\n  - upstream: http://127.0.0.1:9000\n";

#[test]
fn listening_beyond_loopback_must_be_meant() {
    let e = error(&format!("listen: 0.0.0.0:8080\n{ROUTE}"));
    assert!(
        e.starts_with("conf/test.yaml: listen: 0.0.0.0:8080 is not a loopback address"),
        "{e}"
    );
    assert!(e.contains("access.allow_non_loopback"), "{e}");
    let e = error(&format!("admin_listen: '[::]:9901'\n{ROUTE}"));
    assert!(
        e.contains("admin_listen: [::]:9901 is not a loopback"),
        "{e}"
    );
    // Allowing one listener does not allow the other.
    let e = error(&format!(
        "listen: 0.0.0.0:8080\naccess:\n  allow_non_loopback: [admin_listen]\n{ROUTE}"
    ));
    assert!(e.contains("listen: 0.0.0.0:8080 is not a loopback"), "{e}");
    let e = error(&format!(
        "access:\n  allow_non_loopback: [traffic]\n{ROUTE}"
    ));
    assert!(
        e.contains("access.allow_non_loopback[0]: 'traffic' is not a listener"),
        "{e}"
    );
    // Meant, but open to anyone who can reach it: refused, also when the list limits nothing.
    for clients in ["[]", "[0.0.0.0/0]", "['::/0', 10.0.0.0/8]"] {
        let e = error(&format!(
            "listen: 0.0.0.0:8080\naccess:\n  allow_non_loopback: [listen]\n  allowed_clients: {clients}\n{ROUTE}"
        ));
        assert!(
            e.contains("nothing limits who may use it"),
            "{clients}: {e}"
        );
    }
    let e = error(&format!(
        "listen: 0.0.0.0:8080\naccess:\n  allow_non_loopback: [listen]\n{ROUTE}"
    ));
    assert!(
        e.contains(
            "access: listen 0.0.0.0:8080 is not loopback, and nothing limits who may use it"
        ),
        "{e}"
    );
    let c = parse(&format!(
        "listen: 0.0.0.0:8080\naccess:\n  allow_non_loopback: [listen]\n  allowed_clients: [10.0.0.0/8]\n{ROUTE}"
    ))
    .unwrap();
    assert_eq!(c.listen.to_string(), "0.0.0.0:8080");
    assert!(parse(&format!("listen: '[::1]:8080'\n{ROUTE}")).is_ok());
}

#[test]
fn access_keys_are_checked() {
    let access = |body: &str| error(&format!("access:\n{body}{ROUTE}"));
    let e = access("  allowed_clients: [10.0.0.0/33]\n");
    assert!(
        e.contains("access.allowed_clients[0]: '10.0.0.0/33' is not"),
        "{e}"
    );
    let c = parse(&format!(
        "access:\n  allowed_clients: [10.1.2.3/8, 192.168.0.7]\n{ROUTE}"
    ))
    .unwrap();
    let nets: Vec<String> = c
        .access
        .allowed_clients
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(nets, ["10.0.0.0/8", "192.168.0.7/32"]);

    let e = access("  bearer_token_file: /nonexistent/token\n");
    assert!(
        e.contains("access.bearer_token_file: cannot read /nonexistent/token"),
        "{e}"
    );
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short");
    std::fs::write(&short, "tooshort\n").unwrap();
    let e = access(&format!("  bearer_token_file: {}\n", short.display()));
    assert!(e.contains("at least 16 printable characters"), "{e}");
    assert!(
        !e.contains("tooshort"),
        "the token itself must not be echoed: {e}"
    );
    let e = access("  bearer_token_env: SIGPROXY_SURELY_UNSET_VARIABLE\n");
    assert!(
        e.contains("SIGPROXY_SURELY_UNSET_VARIABLE is not set"),
        "{e}"
    );
    let e = access("  bearer_token_file: /a\n  bearer_token_env: B\n");
    assert!(e.contains("exclude each other"), "{e}");
}

#[test]
fn allow_rules_are_checked() {
    let route = |allow: &str| {
        format!("routes:\n  - name: r\n    upstream: http://127.0.0.1:9000\n    allow:\n{allow}")
    };
    let e = error(&route("      - methods: [GET, TRACE]\n"));
    assert!(
        e.contains("routes[0].allow[0].methods[1]: 'TRACE' is not one of"),
        "{e}"
    );
    let e = error(&route("      - paths: [reports/**]\n"));
    assert!(
        e.contains("routes[0].allow[0].paths[0]: 'reports/**' must start with '/'"),
        "{e}"
    );
    let e = error(&route("      - methods: []\n"));
    assert!(
        e.contains("routes[0].allow[0].methods: must not be empty"),
        "{e}"
    );
    let e = error("routes:\n  - upstream: http://127.0.0.1:9000\n    allow: []\n");
    assert!(
        e.contains("routes[0].allow: must list at least one rule"),
        "{e}"
    );
    let c = parse(&route(
        "      - methods: [get, head]\n        paths: [\"/a/**\"]\n",
    ))
    .unwrap();
    let rule = &c.routes[0].allow[0];
    assert_eq!(
        rule.methods.as_deref(),
        Some(&[http::Method::GET, http::Method::HEAD][..])
    );
}

#[test]
fn a_route_that_can_never_match_is_an_error() {
    let e = error(
        "routes:\n  - name: all\n    upstream: http://127.0.0.1:1\n  - name: assets\n    match: { path_prefix: /assets/ }\n    upstream: http://127.0.0.1:2\n",
    );
    assert!(
        e.contains("routes[1]: route 'assets' can never match: route 'all' comes first"),
        "{e}"
    );
    let e = error(
        "routes:\n  - match: { path_prefix: /a/ }\n    upstream: http://127.0.0.1:1\n  - match: { path_prefix: /a/b/, host: x.internal }\n    upstream: http://127.0.0.1:2\n",
    );
    assert!(
        e.contains("routes[1]: route 'route1' can never match"),
        "{e}"
    );
    // More specific first, or other hosts: fine.
    assert!(parse(
        "routes:\n  - match: { path_prefix: /a/b/ }\n    upstream: http://127.0.0.1:1\n  - match: { path_prefix: /a/ }\n    upstream: http://127.0.0.1:2\n  - match: { host: x.internal }\n    upstream: http://127.0.0.1:3\n  - upstream: http://127.0.0.1:4\n"
    )
    .is_ok());
}

#[test]
fn prefixes_are_plain_resolved_paths() {
    for (prefix, why) in [
        ("/a%2Fb/", "'%' is not allowed"),
        ("/a/../b/", "'.' or '..' segments"),
        ("/a//b/", "empty"),
        ("a/", "must start with '/'"),
    ] {
        let e = error(&format!(
            "routes:\n  - match: {{ path_prefix: '{prefix}' }}\n    upstream: http://127.0.0.1:1\n"
        ));
        assert!(
            e.contains("routes[0].match.path_prefix") && e.contains(why),
            "{prefix}: {e}"
        );
    }
    assert!(parse(
        "routes:\n  - match: { path_prefix: /v1.2/a_b~c- }\n    upstream: http://127.0.0.1:1\n"
    )
    .is_ok());
}

#[test]
fn browser_access_keys_are_checked() {
    let c = parse(&format!(
        "access:\n  allowed_hosts: [Sigproxy.Tools.Svc., 10.0.0.7]\n  allowed_origins: [https://App.example.com:8443]\nroutes:\n  - match: {{ host: orders.internal }}\n    upstream: http://127.0.0.1:1\n{}",
        ROUTE.trim_start_matches("routes:\n")
    ))
    .unwrap();
    assert_eq!(
        c.access.browser.hosts,
        ["sigproxy.tools.svc", "10.0.0.7", "orders.internal"]
    );
    assert_eq!(c.access.browser.origins, ["https://app.example.com:8443"]);
    for (key, value) in [
        ("allowed_hosts", "[http://x]"),
        ("allowed_hosts", "[x:8080]"),
        ("allowed_hosts", "['a b']"),
        ("allowed_origins", "['*']"),
        ("allowed_origins", "[https://a.example/path]"),
        ("allowed_origins", "[a.example]"),
    ] {
        let e = error(&format!("access:\n  {key}: {value}\n{ROUTE}"));
        assert!(e.contains(&format!("access.{key}[0]")), "{value}: {e}");
    }
}

#[test]
fn allow_rules_name_methods_or_actions_of_the_route_service() {
    let s3 = |rule: &str| {
        format!(
            "credentials:\n  a: {{}}\nroutes:\n  - upstream: http://127.0.0.1:9000\n    service: s3\n    region: us-east-1\n    credentials: a\n    allow:\n      - {rule}\n"
        )
    };
    assert!(parse(&s3(
        "{ actions: [s3:GetObject, 's3:List*'], paths: [/b/**] }"
    ))
    .is_ok());
    for (rule, want) in [
        (
            "{ methods: [GET], actions: [s3:GetObject] }",
            "routes[0].allow[0].actions: a rule lists methods or actions, not both",
        ),
        (
            "{ actions: [dynamodb:GetItem] }",
            "routes[0].allow[0].actions[0]: 'dynamodb:GetItem' is not an action of s3",
        ),
        (
            "{ actions: [GetObject] }",
            "routes[0].allow[0].actions[0]: 'GetObject' has no ':'",
        ),
        (
            "{ actions: [] }",
            "routes[0].allow[0].actions: must not be empty",
        ),
    ] {
        let e = error(&s3(rule));
        assert!(e.contains(want), "{rule}: {e}");
    }
    let e = error(
        "routes:\n  - upstream: http://127.0.0.1:1\n    allow:\n      - actions: [s3:GetObject]\n",
    );
    assert!(e.contains("actions need a signed route"), "{e}");
    // A Lambda or API Gateway request reaches the user's code: no named action says what it does.
    for (host, service) in [
        ("abc.lambda-url.us-east-1.on.aws", "lambda"),
        ("a1b2c3.execute-api.us-east-1.amazonaws.com", "execute-api"),
    ] {
        let e = error(&format!(
            "credentials:\n  a: {{}}\nroutes:\n  - upstream: https://{host}\n    credentials: a\n    allow:\n      - actions: [{service}:GetFunction]\n"
        ));
        assert!(
            e.contains("routes[0].allow[0].actions[0]")
                && e.contains("told apart by method and path"),
            "{e}"
        );
    }
}

#[test]
fn upstream_options_are_checked() {
    let with = |extra: &str| {
        format!("routes:\n  - name: r\n    upstream: https://127.0.0.1:9000\n{extra}")
    };
    let c = parse(&with(
        "    sign_host: API.example.com:8443\n    headers:\n      add: { x-team: orders }\n      remove: [cookie]\n      duplicate: [authorization]\n    upstream_idle_timeout: 90s\n",
    ))
    .unwrap();
    let r = &c.routes[0];
    assert_eq!(r.sign_host.as_deref(), Some("api.example.com:8443"));
    assert_eq!(r.header_edits.add.len(), 1);
    assert_eq!(
        r.header_edits.duplicate[0].1.as_str(),
        "x-original-authorization"
    );
    assert_eq!(r.upstream_idle_timeout, Duration::from_secs(90));
    let not_pem = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(not_pem.path(), "not a certificate\n").unwrap();
    let not_pem = not_pem.path().display().to_string();
    let e = error(&with(&format!("    tls: {{ ca_file: {not_pem} }}\n")));
    assert!(
        e.contains(&format!(
            "routes[0].tls.ca_file: {not_pem} holds no PEM certificate"
        )),
        "{e}"
    );
    for (extra, want) in [
        (
            "    sign_host: 'a b'\n",
            "routes[0].sign_host: 'a b' is not a host name",
        ),
        (
            "    headers: { add: { authorization: x } }\n",
            "routes[0].headers.add.authorization: 'authorization' cannot be edited",
        ),
        (
            "    headers: { remove: [content-length] }\n",
            "routes[0].headers.remove[0]: 'content-length' cannot be edited",
        ),
        (
            "    headers: { add: { x-a: \"caf\u{e9}\" } }\n",
            "routes[0].headers.add.x-a: the value must be printable ASCII",
        ),
        (
            "    tls: { ca_file: /nonexistent/ca.pem }\n",
            "routes[0].tls.ca_file: cannot read /nonexistent/ca.pem",
        ),
        (
            "    tls: { insecure_skip_verify: true, ca_file: /x }\n",
            "routes[0].tls.insecure_skip_verify: skipping verification makes ca_file pointless",
        ),
        (
            "    upstream_idle_timeout: soon\n",
            "routes[0].upstream_idle_timeout",
        ),
    ] {
        let e = error(&with(extra));
        assert!(e.contains(want), "{extra}: {e}");
    }
}

#[test]
fn path_style_addressing_on_a_buckets_own_host_name_is_refused() {
    let route = |upstream: &str, extra: &str| {
        format!(
            "credentials:\n  app:\n    source: default\nroutes:\n  - upstream: {upstream}\n    \
             service: s3\n    region: eu-west-1\n    credentials: app\n    s3_addressing: path\n{extra}"
        )
    };
    let e = error(&route("https://my-bucket.s3.eu-west-1.amazonaws.com", ""));
    assert!(
        e.contains("routes[0].s3_addressing") && e.contains("my-bucket.s3.eu-west-1.amazonaws.com"),
        "{e}"
    );
    // The host S3 reads is sign_host's when set.
    let e = error(&route(
        "http://127.0.0.1:9000",
        "    sign_host: my-bucket.s3.eu-west-1.amazonaws.com\n",
    ));
    assert!(e.contains("routes[0].s3_addressing"), "{e}");
    // A regional endpoint is path-style: stating it is fine.
    parse(&route("https://s3.eu-west-1.amazonaws.com", "")).unwrap();
}
