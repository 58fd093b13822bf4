//! Where the proxy's own identity comes from: each source of the aws-config chain, end to end
//! against local peers, and several credential sets in one process.

mod common;

use common::*;
use std::time::Duration;

/// sigproxy with the set `app` read by the default chain from `env`, ready.
fn default_chain_proxy(peers: &Peers, env: &[(String, String)]) -> Proxy {
    Proxy::start_ready(&route_config(peers, "  app:\n    source: default\n"), env)
}

fn route_config(peers: &Peers, credentials: &str) -> String {
    let fn_route = route("fn", peers.get("lambda_url"), "lambda", "");
    format!("credentials:\n{credentials}routes:\n{fn_route}")
}

/// Signs one request and returns the role it was signed as.
fn signed_role(proxy: &Proxy) -> String {
    let r = proxy.get("/via-source");
    assert_eq!(r.status, 200, "{}\n{}", r.text(), proxy.log());
    r.json()["role_arn"].as_str().unwrap().to_string()
}

#[test]
fn container_credentials_as_eks_pod_identity_provides_them() {
    let peers = Peers::start();
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("eks-pod-identity-token");
    std::fs::write(&token_file, peers.get("container_token")).unwrap();
    let env = vec![
        (
            "AWS_CONTAINER_CREDENTIALS_FULL_URI".to_string(),
            format!(
                "{}/__control/container-credentials",
                peers.get("lambda_url")
            ),
        ),
        (
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE".to_string(),
            token_file.display().to_string(),
        ),
    ];
    let proxy = default_chain_proxy(&peers, &env);
    assert_eq!(signed_role(&proxy), peers.get("role_arn"));
    assert!(
        peers.stats()["container_credential_calls"]
            .as_u64()
            .unwrap()
            >= 1
    );
}

#[test]
fn imdsv2_provides_them_on_ec2() {
    let peers = Peers::start();
    let env = vec![
        ("AWS_EC2_METADATA_DISABLED".to_string(), "false".to_string()),
        (
            "AWS_EC2_METADATA_SERVICE_ENDPOINT".to_string(),
            peers.get("lambda_url").to_string(),
        ),
    ];
    let proxy = default_chain_proxy(&peers, &env);
    assert_eq!(signed_role(&proxy), peers.get("role_arn"));
    assert!(peers.stats()["imds_credential_calls"].as_u64().unwrap() >= 1);
}

#[test]
fn a_profile_with_role_arn_and_source_profile_assumes_the_role() {
    let peers = Peers::start();
    let dir = tempfile::tempdir().unwrap();
    let config_file = dir.path().join("config");
    let credentials_file = dir.path().join("credentials");
    std::fs::write(
        &config_file,
        format!(
            r#"[profile app]
role_arn = {}
source_profile = base
external_id = {}
region = us-east-1
"#,
            peers.get("role_arn"),
            peers.get("external_id")
        ),
    )
    .unwrap();
    std::fs::write(
        &credentials_file,
        format!(
            r#"[base]
aws_access_key_id = {}
aws_secret_access_key = {}
"#,
            peers.get("access_key_id"),
            peers.get("secret_access_key")
        ),
    )
    .unwrap();
    let env = vec![
        (
            "AWS_CONFIG_FILE".to_string(),
            config_file.display().to_string(),
        ),
        (
            "AWS_SHARED_CREDENTIALS_FILE".to_string(),
            credentials_file.display().to_string(),
        ),
        (
            "AWS_ENDPOINT_URL_STS".to_string(),
            peers.get("sts_endpoint").to_string(),
        ),
    ];
    let sets = r#"  app:
    source: profile
    profile: app
"#;
    let proxy = Proxy::start_ready(&route_config(&peers, sets), &env);
    assert_eq!(signed_role(&proxy), peers.get("role_arn"));
}

#[test]
fn two_routes_sign_with_two_different_roles_in_one_process() {
    let peers = Peers::start();
    let role_b = peers
        .credentials_yaml("b", peers.get("external_id"))
        .replace(peers.get("role_arn"), peers.get("role_b_arn"));
    let config = format!(
        r#"credentials:
{}{role_b}routes:
  - name: a
    match: {{ path_prefix: /a/ }}
    upstream: {lambda}
    service: lambda
    region: us-east-1
    credentials: app
  - name: b
    match: {{ path_prefix: /b/ }}
    upstream: {lambda}
    service: lambda
    region: us-east-1
    credentials: b
"#,
        peers.credentials_yaml("app", peers.get("external_id")),
        lambda = peers.get("lambda_url"),
    );
    let proxy = Proxy::start_ready(&config, &peers.caller_env());
    for _ in 0..3 {
        let a = proxy.get("/a/x");
        let b = proxy.get("/b/x");
        assert_eq!(a.json()["role_arn"], peers.get("role_arn"));
        assert_eq!(b.json()["role_arn"], peers.get("role_b_arn"));
        assert_ne!(a.json()["access_key_id"], b.json()["access_key_id"]);
    }
}

#[test]
fn web_identity_as_irsa_provides_them_and_the_token_file_is_read_again_on_refresh() {
    // Credentials that live 4 s: several refreshes within the test.
    let peers = Peers::start_with(&["--short-credentials", "4"]);
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "projected-token-1").unwrap();
    let env = vec![
        (
            "AWS_ROLE_ARN".to_string(),
            peers.get("role_arn").to_string(),
        ),
        (
            "AWS_WEB_IDENTITY_TOKEN_FILE".to_string(),
            token_file.display().to_string(),
        ),
        ("AWS_ROLE_SESSION_NAME".to_string(), "irsa-test".to_string()),
        (
            "AWS_ENDPOINT_URL_STS".to_string(),
            peers.get("sts_endpoint").to_string(),
        ),
        ("AWS_REGION".to_string(), "us-east-1".to_string()),
    ];
    let proxy = default_chain_proxy(&peers, &env);
    assert_eq!(signed_role(&proxy), peers.get("role_arn"));

    // The kubelet rotates the projected token; the next refresh must present the new one.
    std::fs::write(&token_file, "projected-token-2").unwrap();
    let tokens = || peers.stats()["web_identity_tokens"].clone();
    let reread = poll(Duration::from_secs(15), || {
        tokens()
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "projected-token-2")
    });
    assert!(reread, "token file not re-read: {}", tokens());
    assert_eq!(signed_role(&proxy), peers.get("role_arn"));
}

#[test]
fn a_chain_of_roles_is_assumed_hop_by_hop() {
    let peers = Peers::start();
    let sets = format!(
        r#"  app:
    assume_role:
      - role_arn: {a}
        session_name: {session}
        external_id: {x}
        sts_endpoint: {sts}
        sts_region: us-east-1
      - role_arn: {b}
        external_id: {x}
        sts_endpoint: {sts}
        sts_region: us-east-1
"#,
        a = peers.get("role_arn"),
        b = peers.get("role_b_arn"),
        x = peers.get("external_id"),
        sts = peers.get("sts_endpoint"),
        session = peers.get("chain_session"),
    );
    let proxy = Proxy::start_ready(&route_config(&peers, &sets), &peers.caller_env());
    // Signed as the last role of the chain, which only the first role may assume from here.
    assert_eq!(signed_role(&proxy), peers.get("role_b_arn"));
    assert!(peers.stats()["assume_role_calls"].as_u64().unwrap() >= 2);
}

#[test]
fn get_session_token_and_get_federation_token_with_a_scoping_policy() {
    let peers = Peers::start();
    let sts = format!(
        r#"      sts_endpoint: {}
      sts_region: us-east-1
"#,
        peers.get("sts_endpoint")
    );
    let session = format!(
        r#"  app:
    session_token:
      duration_seconds: 900
{sts}"#
    );
    let proxy = Proxy::start_ready(&route_config(&peers, &session), &peers.caller_env());
    assert_eq!(signed_role(&proxy), "session-token");
    assert!(peers.stats()["session_token_calls"].as_u64().unwrap() >= 1);
    drop(proxy);

    // The broker pattern: one identity, a narrower federated session for this route.
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"lambda:InvokeFunctionUrl","Resource":"arn:aws:lambda:us-east-1:123456789012:function:orders"}]}"#;
    let federation = format!(
        r#"  app:
    federation_token:
      name: orders-broker
      policy: '{policy}'
{sts}"#
    );
    let proxy = Proxy::start_ready(&route_config(&peers, &federation), &peers.caller_env());
    assert_eq!(signed_role(&proxy), "federation-token");
    let stats = peers.stats();
    assert!(stats["federation_token_calls"].as_u64().unwrap() >= 1);
    let policies = stats["federation_policies"].as_array().unwrap();
    assert!(
        policies.iter().any(|p| p == policy),
        "the scoping policy was not sent: {policies:?}"
    );
}
