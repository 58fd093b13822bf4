//! S3 through sigproxy, end to end: boto3 with no credentials → sigproxy → moto S3, which
//! verifies every signature (auth enforced) and the role's IAM policy. Once per payload mode.

mod common;

use common::*;
use std::process::Command;

fn s3_config(peers: &Peers, payload: &str) -> String {
    let limits = format!("    payload: {payload}\n    max_body_bytes: 16777216\n");
    peers.config(&route("s3", peers.get("sts_endpoint"), "s3", &limits))
}

fn run_client(peers: &Peers, proxy: &Proxy, bucket: &str) {
    let out = Command::new(python())
        .arg(repo_root().join("tests/peers/s3_client.py"))
        .args(["--endpoint", &format!("http://{}", proxy.addr)])
        .args(["--bucket", bucket])
        .args(["--denied-bucket", peers.get("denied_bucket")])
        .output()
        .expect("run tests/peers/s3_client.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("all S3 checks passed"),
        "S3 client failed\n--- stdout\n{stdout}\n--- stderr\n{}\n--- proxy log\n{}",
        String::from_utf8_lossy(&out.stderr),
        proxy.log()
    );
}

#[test]
fn boto3_without_credentials_works_through_every_payload_mode() {
    let peers = Peers::start();
    for payload in ["streaming", "unsigned", "signed"] {
        let proxy = Proxy::start_ready(&s3_config(&peers, payload), &peers.caller_env());
        run_client(&peers, &proxy, &format!("sigproxy-{payload}"));
    }
}
