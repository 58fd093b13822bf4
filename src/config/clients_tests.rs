use super::super::{Config, StsTokenKind};
use std::path::Path;

const ROLE: &str = "arn:aws:iam::123456789012:role/app";

fn parse(access: &str, sets: &str, extra: &str) -> Result<Config, String> {
    std::env::set_var("CLIENTS_TEST_A", "client-a-token-0123456789");
    std::env::set_var("CLIENTS_TEST_B", "client-b-token-0123456789");
    std::env::set_var("CLIENTS_TEST_SHORT", "short");
    let text = format!(
        "{extra}access:\n{access}credentials:\n{sets}routes:\n  - name: orders\n    match: {{ path_prefix: /orders/ }}\n    upstream: https://example.lambda-url.us-east-1.on.aws\n    service: lambda\n    region: us-east-1\n    credentials: broker\n  - name: reports\n    upstream: https://example.lambda-url.us-east-1.on.aws\n    service: lambda\n    region: us-east-1\n    credentials: shared\n"
    );
    Config::parse(&text, Path::new("c.yaml")).map_err(|e| e.to_string())
}

const TWO: &str = "  clients:\n    - name: app-a\n      token_env: CLIENTS_TEST_A\n      routes: [orders, reports]\n    - name: app-b\n      token_env: CLIENTS_TEST_B\n      routes: [reports]\n";

fn role_sets(broker: &str) -> String {
    format!("  broker:\n{broker}  shared:\n    assume_role: {{ role_arn: '{ROLE}' }}\n")
}

#[test]
fn each_client_gets_a_session_of_the_per_client_sets_its_routes_use() {
    let broker = format!("    per_client: true\n    assume_role: {{ role_arn: '{ROLE}' }}\n");
    let c = parse(TWO, &role_sets(&broker), "").unwrap();
    assert_eq!(c.access.clients.len(), 2);
    assert!(!format!("{:?}", c.access).contains("client-a-token"));
    let sessions = c.client_sessions();
    // app-b uses no route signing with `broker`: no session for it.
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].client.as_deref(), Some("app-a"));
    assert_eq!(sessions[0].assume_role[0].session_name, "app-a");
    assert!(sessions[0].per_client.is_none());

    let policy = r#"{"Version":"2012-10-17","Statement":[]}"#;
    let broker = format!(
        "    per_client: true\n    federation_token:\n      policy: '{{}}'\n      client_policies:\n        app-a: '{policy}'\n"
    );
    let c = parse(TWO, &role_sets(&broker), "").unwrap();
    let session = &c.client_sessions()[0];
    let Some(token) = &session.sts_token else {
        panic!("no federation token")
    };
    assert_eq!(
        token.kind,
        StsTokenKind::Federation {
            name: "app-a".into(),
            policy: Some(policy.into())
        }
    );
}

#[test]
fn errors_name_the_file_the_key_and_the_reason() {
    let per_client = format!("    per_client: true\n    assume_role: {{ role_arn: '{ROLE}' }}\n");
    let shared = format!("    assume_role: {{ role_arn: '{ROLE}' }}\n");
    let client = |name: &str, token: &str, routes: &str| {
        format!("    - name: {name}\n      token_env: {token}\n      routes: [{routes}]\n")
    };
    let clients = |entries: &[&String]| {
        let all: String = entries.iter().map(|e| e.as_str()).collect();
        format!("  clients:\n{all}")
    };
    let a = client("app-a", "CLIENTS_TEST_A", "orders");
    let cases: Vec<(String, String, &str, &str)> = vec![
        (
            format!("  bearer_token_env: CLIENTS_TEST_A\n{}", clients(&[&a])),
            role_sets(&shared),
            "",
            "c.yaml: access.bearer_token_env: clients and a single bearer token exclude each other",
        ),
        (
            clients(&[&a, &client("app-a", "CLIENTS_TEST_B", "orders")]),
            role_sets(&shared),
            "",
            "c.yaml: access.clients[1].name: duplicate client name 'app-a'",
        ),
        (
            // One identity on AWS in all but case: CloudTrail queries, IAM names and people
            // reading logs do not tell them apart.
            clients(&[&a, &client("App-A", "CLIENTS_TEST_B", "orders")]),
            role_sets(&shared),
            "",
            "c.yaml: access.clients[1].name: duplicate client name 'App-A' (access.clients[0] has it",
        ),
        (
            clients(&[&client("app a", "CLIENTS_TEST_A", "orders")]),
            role_sets(&shared),
            "",
            "c.yaml: access.clients[0].name: 'app a' must be 2-32 characters",
        ),
        (
            clients(&[&client("app-a", "CLIENTS_TEST_A", "nope")]),
            role_sets(&shared),
            "",
            "c.yaml: access.clients[0].routes[0]: 'nope' is not the name of a route",
        ),
        (
            clients(&[&client("app-a", "CLIENTS_TEST_SHORT", "orders")]),
            role_sets(&shared),
            "",
            "c.yaml: access.clients[0].token_env: the token must be at least 16",
        ),
        (
            clients(&[&a, &client("app-b", "CLIENTS_TEST_A", "orders")]),
            role_sets(&shared),
            "",
            "c.yaml: access.clients[1].token_env: holds the same token as access.clients[0] \
             (app-a's token_env)",
        ),
        (
            "  clients:\n    - name: app-a\n      routes: [orders]\n".into(),
            role_sets(&shared),
            "",
            "c.yaml: access.clients[0]: token_file or token_env is required",
        ),
        (
            String::new(),
            role_sets(&per_client),
            "",
            "c.yaml: credentials.broker.per_client: needs access.clients",
        ),
        (
            clients(&[&a]),
            role_sets("    per_client: true\n    session_token: {}\n"),
            "",
            "c.yaml: credentials.broker.per_client: needs assume_role or federation_token",
        ),
        (
            clients(&[&a]),
            role_sets(&format!(
                "    per_client: true\n    assume_role: {{ role_arn: '{ROLE}', session_name: fixed }}\n"
            )),
            "",
            "c.yaml: credentials.broker.assume_role.session_name: per_client",
        ),
        (
            clients(&[&a]),
            role_sets("    per_client: true\n    federation_token: { name: fixed }\n"),
            "",
            "c.yaml: credentials.broker.federation_token.name: per_client",
        ),
        (
            clients(&[&a]),
            role_sets(
                "    per_client: true\n    federation_token:\n      client_policies: { app-z: '{}' }\n",
            ),
            "",
            "c.yaml: credentials.broker.federation_token.client_policies.app-z: 'app-z' is not the name of a client",
        ),
        (
            clients(&[&a]),
            role_sets(
                "    federation_token:\n      name: fixed\n      client_policies: { app-a: '{}' }\n",
            ),
            "",
            "c.yaml: credentials.broker.federation_token.client_policies: only the federation_token of a per_client set",
        ),
        (
            clients(&[&format!("{a}      credential_endpoint: true\n")]),
            role_sets(&shared),
            "",
            "c.yaml: access.clients[0].credential_endpoint: needs credential_endpoint serving a per_client credential set",
        ),
        (
            clients(&[&a]),
            role_sets(&per_client),
            "credential_endpoint:\n  listen: 127.0.0.1:9911\n  credentials: broker\n  authorization_token_env: CLIENTS_TEST_B\n",
            "c.yaml: credential_endpoint.authorization_token_file: 'broker' is per_client",
        ),
        (
            // The endpoint's token would fetch the shared set's credentials, outside the
            // client's routes (and a client may fetch only a per_client set's own session).
            clients(&[&client("app-b", "CLIENTS_TEST_B", "orders"), &a]),
            role_sets(&shared),
            "credential_endpoint:\n  listen: 127.0.0.1:9911\n  credentials: shared\n  authorization_token_env: CLIENTS_TEST_A\n",
            "c.yaml: access.clients[1].token_env: holds the credential endpoint's token",
        ),
    ];
    for (access, sets, extra, expected) in cases {
        let e = parse(&access, &sets, extra).unwrap_err();
        assert!(e.starts_with(expected), "{e}\nexpected: {expected}");
    }
}

#[test]
fn a_per_client_endpoint_needs_no_token_of_its_own() {
    let per_client = format!("    per_client: true\n    assume_role: {{ role_arn: '{ROLE}' }}\n");
    let access = "  clients:\n    - name: app-a\n      token_env: CLIENTS_TEST_A\n      credential_endpoint: true\n";
    let endpoint = "credential_endpoint:\n  listen: 127.0.0.1:9911\n  credentials: broker\n";
    let c = parse(access, &role_sets(&per_client), endpoint).unwrap();
    assert!(c.credential_endpoint.as_ref().unwrap().token.is_none());
    assert_eq!(c.client_sessions()[0].client.as_deref(), Some("app-a"));
}

#[test]
fn a_client_lists_only_routes_named_in_the_file() {
    // `route1` is the default name of the second route: another route added above it would
    // hand the client a different route, silently, at the next reload.
    std::env::set_var("CLIENTS_TEST_A", "client-a-token-0123456789");
    let text = |listed: &str| {
        format!(
            "access:\n  clients:\n    - name: app-a\n      token_env: CLIENTS_TEST_A\n      routes: [{listed}]\nroutes:\n  - name: orders\n    match: {{ path_prefix: /orders/ }}\n    upstream: http://127.0.0.1:1\n  - upstream: http://127.0.0.1:2\n"
        )
    };
    let e = Config::parse(&text("orders, route1"), Path::new("c.yaml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(
            "c.yaml: access.clients[0].routes[1]: 'route1' is the default name of routes[1]"
        ),
        "{e}"
    );
    assert!(Config::parse(&text("orders"), Path::new("c.yaml")).is_ok());
}

#[test]
fn no_shared_session_passes_for_a_client() {
    let broker = format!("    per_client: true\n    assume_role: {{ role_arn: '{ROLE}' }}\n");
    // The shared set named as app-a's sessions are (IAM names ignore case).
    for (shared, key) in [
        (
            format!("  shared:\n    assume_role: {{ role_arn: '{ROLE}', session_name: APP-A }}\n"),
            "credentials.shared.assume_role.session_name",
        ),
        (
            format!(
                "  shared:\n    assume_role:\n      - {{ role_arn: '{ROLE}' }}\n      - {{ role_arn: '{ROLE}', session_name: app-a }}\n"
            ),
            "credentials.shared.assume_role[1].session_name",
        ),
        // A chain's first hop is a session on its own role too.
        (
            format!(
                "  shared:\n    assume_role:\n      - {{ role_arn: '{ROLE}', session_name: app-a }}\n      - {{ role_arn: '{ROLE}' }}\n"
            ),
            "credentials.shared.assume_role[0].session_name",
        ),
        (
            "  shared:\n    federation_token: { name: app-a }\n".to_string(),
            "credentials.shared.federation_token.name",
        ),
    ] {
        let sets = format!("  broker:\n{broker}{shared}");
        let err = parse(TWO, &sets, "").unwrap_err();
        assert!(
            err.contains(key) && err.contains("client 'app-a'") && !err.contains("  "),
            "{key}: {err}"
        );
    }
    // A per_client chain's first hop is shared by all its clients: not one client's name.
    let chain = format!(
        "  broker:\n    per_client: true\n    assume_role:\n      - {{ role_arn: '{ROLE}', session_name: app-a }}\n      - {{ role_arn: '{ROLE}' }}\n  shared:\n    assume_role: {{ role_arn: '{ROLE}' }}\n"
    );
    let err = parse(TWO, &chain, "").unwrap_err();
    assert!(
        err.contains("credentials.broker.assume_role[0].session_name")
            && err.contains("client 'app-a'"),
        "{err}"
    );
    // Its last hop is each client's own: not checked.
    let chain = format!(
        "  broker:\n    per_client: true\n    assume_role:\n      - {{ role_arn: '{ROLE}' }}\n      - {{ role_arn: '{ROLE}' }}\n  shared:\n    assume_role: {{ role_arn: '{ROLE}' }}\n"
    );
    parse(TWO, &chain, "").unwrap();
    // app-b uses no per_client set: no session is named for it, nothing to pass for.
    let sets = format!(
        "  broker:\n{broker}  shared:\n    assume_role: {{ role_arn: '{ROLE}', session_name: app-b }}\n"
    );
    parse(TWO, &sets, "").unwrap();
    // Without per_client sets no session is named for a client: nothing to pass for.
    let sets = format!(
        "  broker:\n    assume_role: {{ role_arn: '{ROLE}' }}\n  shared:\n    assume_role: {{ role_arn: '{ROLE}', session_name: app-a }}\n"
    );
    parse(TWO, &sets, "").unwrap();
    // sigproxy's own sessions are sigproxy-<hostname>, on any host.
    let own = TWO.replace("name: app-b", "name: Sigproxy-web-1");
    let err = parse(&own, &role_sets(&broker), "").unwrap_err();
    assert!(
        err.contains("access.clients[1].name") && err.contains("sigproxy-") && !err.contains("  "),
        "{err}"
    );
}
