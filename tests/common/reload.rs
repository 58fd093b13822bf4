//! Helpers shared by the reload tests (`reload.rs`, `reload_tokens.rs`).

use super::{Peers, Proxy};
use std::path::Path;
use std::time::Duration;

pub fn reloads(proxy: &Proxy, result: &str) -> f64 {
    proxy
        .metric("sigproxy_config_reloads_total", &[("result", result)])
        .unwrap_or_else(|| panic!("no sigproxy_config_reloads_total{{result={result}}}"))
}

pub fn signed_route(
    peers: &Peers,
    name: &str,
    prefix: &str,
    base: &str,
    credentials: &str,
) -> String {
    format!(
        "  - name: {name}\n    match: {{ path_prefix: {prefix} }}\n    strip_prefix: true\n    upstream: {}{base}\n    service: lambda\n    region: us-east-1\n    credentials: {credentials}\n",
        peers.get("lambda_url")
    )
}

/// `proxy`'s configuration plus a set `wrong` (and its route) whose role trust policy wants
/// another external id: STS refuses its AssumeRole.
pub fn with_refused_set(peers: &Peers, proxy: &Proxy) -> String {
    format!(
        "listen: {}\nadmin_listen: {}\nshutdown_grace: 1s\ncredentials:\n{}{}routes:\n{}{}",
        proxy.addr,
        proxy.admin,
        peers.credentials_yaml("app", peers.get("external_id")),
        peers.credentials_yaml("wrong", "not-the-external-id"),
        signed_route(peers, "fn", "/fn/", "", "app"),
        signed_route(peers, "other", "/other/", "", "wrong"),
    )
}

/// The status of a signed GET through `proxy` with `token` as the bearer token.
pub fn with_token(proxy: &Proxy, token: &str) -> u16 {
    let bearer = format!("Bearer {token}");
    proxy
        .send("GET", "/fn/x", &[("Authorization", &bearer)], b"")
        .status
}

/// `proxy`'s configuration (with `access`) plus a set `slow` (and its route, under /other/)
/// whose STS is at `sts`.
pub fn with_set_at(peers: &Peers, proxy: &Proxy, access: &str, sts: &str) -> String {
    let slow = peers
        .credentials_yaml("slow", peers.get("external_id"))
        .replace(peers.get("sts_endpoint"), sts);
    format!(
        "{access}listen: {}\nadmin_listen: {}\nshutdown_grace: 1s\ncredentials:\n{}{slow}routes:\n{}{}",
        proxy.addr,
        proxy.admin,
        peers.credentials_yaml("app", peers.get("external_id")),
        signed_route(peers, "fn", "/fn/", "", "app"),
        signed_route(peers, "other", "/other/", "", "slow"),
    )
}

/// A TCP front for `target` that holds each connection `delay` before relaying it (an STS
/// slow to answer). Its threads end with the test process.
pub fn slow_front(target: &str, delay: Duration) -> String {
    let target = target
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let target = target.clone();
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                let Ok(server) = std::net::TcpStream::connect(&target) else {
                    return;
                };
                let (mut c, mut s) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c, &mut s);
                    let _ = s.shutdown(std::net::Shutdown::Write);
                });
                let (mut s, mut c) = (server, client);
                let _ = std::io::copy(&mut s, &mut c);
                let _ = c.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    format!("http://{addr}")
}

/// A configuration with clients (name, token file) on an unsigned route `open` to `upstream`,
/// and the credential set `app`; with `slow` (an STS address) also a set `slow` whose STS is
/// there and its route `other` (under /other/), which every client may use.
pub fn clients_config(
    peers: &Peers,
    upstream: &str,
    clients: &[(&str, &Path)],
    slow: &str,
) -> String {
    let mut text = "access:\n  clients:\n".to_string();
    for (name, file) in clients {
        text += &format!(
            "    - name: {name}\n      token_file: {}\n      routes: [open{}]\n",
            file.display(),
            if slow.is_empty() { "" } else { ", other" }
        );
    }
    text += &format!(
        "credentials:\n{}",
        peers.credentials_yaml("app", peers.get("external_id"))
    );
    if !slow.is_empty() {
        let set = peers
            .credentials_yaml("slow", peers.get("external_id"))
            .replace(peers.get("sts_endpoint"), slow);
        text += &set;
    }
    text += &format!(
        "routes:\n  - name: open\n    match: {{ path_prefix: /open/ }}\n    upstream: {upstream}\n"
    );
    if !slow.is_empty() {
        text += &signed_route(peers, "other", "/other/", "", "slow");
    }
    text
}

/// The status of a GET of `path` through `proxy` with `token` as the bearer token.
pub fn status(proxy: &Proxy, path: &str, token: &str) -> u16 {
    let bearer = format!("Bearer {token}");
    proxy
        .send("GET", path, &[("Authorization", &bearer)], b"")
        .status
}
