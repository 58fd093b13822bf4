//! The IAM policies the README and the shipped configs tell users to paste are valid IAM, as
//! moto's IAM policy validator (not ours) reads them: a trust policy is accepted by CreateRole,
//! any other policy by CreatePolicy.

mod common;

use serde_json::Value;
use std::process::Command;

/// What tests/peers/iam_policies.py says of each document in `files`.
fn check(files: &[&str]) -> Vec<Value> {
    let out = Command::new(common::python())
        .arg(common::repo_root().join("tests/peers/iam_policies.py"))
        .args(files)
        .current_dir(common::repo_root())
        .output()
        .expect("run tests/peers/iam_policies.py");
    assert!(
        out.status.success(),
        "iam_policies.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON line per document"))
        .collect()
}

#[test]
fn every_documented_policy_is_valid_iam() {
    let results = check(&["README.md", "config/clients.yaml"]);
    let kinds = |k: &str| results.iter().filter(|r| r["kind"] == k).count();
    // The MFA pattern's and the broker pattern's trust policies, and the permission policies
    // around them: a regex that stops finding them must not pass for want of documents.
    assert!(kinds("trust") >= 3, "trust policies found: {results:?}");
    assert!(
        kinds("policy") >= 6,
        "permission policies found: {results:?}"
    );
    let refused: Vec<&Value> = results.iter().filter(|r| r["ok"] != true).collect();
    assert!(refused.is_empty(), "policies IAM refuses: {refused:?}");
}

#[test]
fn the_validator_refuses_a_broken_policy() {
    let dir = std::env::temp_dir().join(format!("sigproxy-policies-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.md");
    std::fs::write(
        &file,
        "```json\n{\"Version\": \"2012-10-17\", \"Statement\": [{\"Effect\": \"Allow\", \
         \"Action\": \"s3GetObject\", \"Resource\": \"*\"}]}\n```\n\
         ```json\n{\"Version\": \"2012-10-17\", \"Statement\": [{\"Effect\": \"Allow\", \
         \"Principal\": {\"AWS\": \"arn:aws:iam::123456789012:role/x\"}, \
         \"Action\": \"sts:AssumeRole\", \"Condition\": {\"Bool\": \"true\"}}]}\n```\n",
    )
    .unwrap();
    let results = check(&[file.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(results.len(), 2, "{results:?}");
    for r in &results {
        assert_eq!(r["ok"], false, "a broken policy passed: {r:?}");
    }
}
