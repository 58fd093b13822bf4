//! A query as its upstream reads it. Real S3 command-line clients with no credentials (s5cmd,
//! rclone) through sigproxy in front of moto S3, which checks every signature: they send a
//! literal `+` in a query as `%2B` and a space as `+` (`prefix=sp+dir%2F`), as AWS's form
//! decoding reads it, so listing and deleting under a prefix with a space must reach the keys
//! the client means. On a pass-through route the `+` goes as the client sent it.

mod common;

use common::upstream::{Reply, Upstream};
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BUCKET: &str = "sigproxy-clients";
const KEYS: [&str; 3] = ["sp dir/a.txt", "sp dir/b+c.txt", "sp dir/sub/d.txt"];

fn s3_proxy(peers: &Peers) -> Proxy {
    let config = peers.config(&route("s3", peers.get("sts_endpoint"), "s3", ""));
    Proxy::start_ready(&config, &peers.caller_env())
}

/// `key` as it goes in a path: each byte but unreserved characters and `/` escaped.
fn escaped(key: &str) -> String {
    let mut out = String::new();
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A bucket holding [`KEYS`] and one key outside the prefix, written through the proxy.
fn fill(proxy: &Proxy) {
    let made = proxy.send("PUT", &format!("/{BUCKET}"), &[], b"");
    assert!(matches!(made.status, 200 | 409), "{made:?}");
    for key in KEYS.iter().chain(&["sp dir-not/e.txt"]) {
        let put = proxy.send("PUT", &format!("/{BUCKET}/{}", escaped(key)), &[], b"x");
        assert_eq!(put.status, 200, "PUT {key}: {}", put.text());
    }
}

/// The keys under `prefix`, from a ListObjectsV2 sent through the proxy (`%20`, unambiguous).
fn listed(proxy: &Proxy, prefix: &str) -> Vec<String> {
    let r = proxy.get(&format!(
        "/{BUCKET}?list-type=2&prefix={}",
        escaped(prefix).replace('/', "%2F")
    ));
    assert_eq!(r.status, 200, "{}", r.text());
    let body = String::from_utf8(r.body).unwrap();
    body.split("<Key>")
        .skip(1)
        .filter_map(|s| s.split_once("</Key>"))
        .map(|(key, _)| key.replace("&amp;", "&"))
        .collect()
}

fn tool(name: &str) -> PathBuf {
    let path = python().with_file_name(name);
    assert!(
        path.exists(),
        "{} missing: tests/peers/requirements.txt installs it",
        path.display()
    );
    path
}

fn output(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn rclone(proxy: &Proxy, home: &Path, args: &[&str]) -> Output {
    common::rclone_command(&tool("rclone"), proxy.addr, home)
        .args(args)
        .args(["--retries", "1", "--low-level-retries", "1"])
        .args(["--contimeout", "5s", "--timeout", "20s"])
        .output()
        .expect("run rclone")
}

#[test]
fn s5cmd_lists_under_a_prefix_with_a_space() {
    let peers = Peers::start();
    let proxy = s3_proxy(&peers);
    fill(&proxy);
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(tool("s5cmd"))
        .args(["--endpoint-url", &format!("http://{}", proxy.addr)])
        .args(["--no-sign-request", "--retry-count", "0"])
        .args(["ls", &format!("s3://{BUCKET}/sp dir/")])
        .env("HOME", home.path())
        .env("AWS_REGION", "us-east-1")
        .output()
        .expect("run s5cmd");
    let text = output(&out);
    assert!(
        out.status.success(),
        "{text}\n--- proxy log\n{}",
        proxy.log()
    );
    // One level, as `ls` lists a folder: its objects and its sub-folder.
    for name in [" a.txt", " b+c.txt", " sub/"] {
        assert!(text.contains(name), "{name} not listed:\n{text}");
    }
    assert!(!text.contains("e.txt"), "a key outside the prefix:\n{text}");
}

#[test]
fn rclone_lists_and_purges_a_folder_with_a_space() {
    let peers = Peers::start();
    let proxy = s3_proxy(&peers);
    fill(&proxy);
    let home = tempfile::tempdir().unwrap();
    let folder = format!("x:{BUCKET}/sp dir");

    let out = rclone(&proxy, home.path(), &["lsf", "-R", &folder]);
    let text = output(&out);
    assert!(out.status.success(), "{text}");
    let mut names: Vec<&str> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.ends_with('/'))
        .map(|l| KEYS.iter().find(|k| k.ends_with(l)).copied().unwrap_or("?"))
        .collect();
    names.sort_unstable();
    assert_eq!(names, KEYS, "{text}");

    let out = rclone(&proxy, home.path(), &["purge", &folder]);
    assert!(out.status.success(), "{}", output(&out));
    assert_eq!(
        listed(&proxy, "sp dir/"),
        Vec::<String>::new(),
        "purge left keys"
    );
    for key in KEYS {
        let r = proxy.get(&format!("/{BUCKET}/{}", escaped(key)));
        assert_eq!(r.status, 404, "{key} is still there");
    }
    // Only the folder: its neighbour, whose name starts the same, is untouched.
    assert_eq!(listed(&proxy, "sp dir-not/"), ["sp dir-not/e.txt"]);
}

#[test]
fn pass_through_routes_send_plus_as_the_client_did() {
    // Answers each request with its request target.
    let upstream = Upstream::builder()
        .answer(|req| Reply::ok(req.target.clone()))
        .start();
    let config = format!(
        r#"routes:
  - name: open
    upstream: {}
"#,
        upstream.url()
    );
    let proxy = Proxy::start(&config, &[]);
    // Other escapes are normalised as on every route; `+`, which servers read two ways, is not.
    for (sent, arrives) in [
        ("/s?q=a+b&lit=%2b&sp=%20", "/s?q=a+b&lit=%2B&sp=%20"),
        ("/s?a+b=+&+", "/s?a+b=+&+"),
    ] {
        let r = proxy.get(sent);
        assert_eq!(r.status, 200, "{sent}");
        assert_eq!(r.text(), arrives, "{sent}");
    }
}
