//! Test harness: real peers on ephemeral loopback ports, the real sigproxy binary, and a small
//! raw HTTP/1.1 client so tests control every byte they send.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

pub mod chunked;
pub mod ports;
pub mod reload;
pub mod s3s;
pub mod upstream;

pub use ports::{free_port, listened_on_by};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python with moto and boto3: `SIGPROXY_TEST_PYTHON`, else the repo's `.venv`.
pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("SIGPROXY_TEST_PYTHON") {
        return p.into();
    }
    let venv = repo_root().join(".venv/bin/python");
    assert!(
        venv.exists(),
        "no Python test environment: run ./scripts/test (it creates .venv with moto), \
         or set SIGPROXY_TEST_PYTHON"
    );
    venv
}

/// Runs tests/peers/tls_tool.py on `commands` (certificates to make: `ca`, `cert`), asserting
/// each one's answer says ok.
pub fn tls_tool(commands: &[Value]) {
    let mut tool = Command::new(python())
        .arg(repo_root().join("tests/peers/tls_tool.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start tests/peers/tls_tool.py");
    let mut stdin = tool.stdin.take().unwrap();
    for command in commands {
        writeln!(stdin, "{command}").unwrap();
    }
    drop(stdin);
    let out = tool.wait_with_output().unwrap();
    let out = String::from_utf8(out.stdout).unwrap();
    let ok = |line: &str| serde_json::from_str::<Value>(line).is_ok_and(|a| a["ok"] == true);
    assert!(
        out.lines().count() == commands.len() && out.lines().all(ok),
        "{out}"
    );
}

/// moto STS (auth enforced) and the verifying Lambda URL stand-in, in one Python process.
pub struct Peers {
    child: Child,
    _stdin: ChildStdin,
    pub info: Value,
}

impl Peers {
    pub fn start() -> Peers {
        Self::start_with(&[])
    }

    pub fn start_with(args: &[&str]) -> Peers {
        let mut child = Command::new(python())
            .arg(repo_root().join("tests/peers/aws_peers.py"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tests/peers/aws_peers.py");
        let stdin = child.stdin.take().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("read peers' description");
        let info: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("peers did not start ({e}): {line:?}"));
        Peers {
            child,
            _stdin: stdin,
            info,
        }
    }

    pub fn get(&self, key: &str) -> &str {
        self.info[key].as_str().unwrap()
    }

    pub fn lambda_addr(&self) -> SocketAddr {
        self.addr_of("lambda_url")
    }

    /// The address in one of the `http://` URLs the peers describe.
    pub fn addr_of(&self, key: &str) -> SocketAddr {
        self.get(key).trim_start_matches("http://").parse().unwrap()
    }

    /// The stand-in's counters: verified, rejected, assume_role_calls, keys_seen.
    pub fn stats(&self) -> Value {
        let r = request(self.lambda_addr(), "GET", "/__control/stats", &[], b"");
        r.json()
    }

    /// Environment giving sigproxy's default chain the caller user's keys and nothing else.
    pub fn caller_env(&self) -> Vec<(String, String)> {
        static_keys(self.get("access_key_id"), self.get("secret_access_key"))
    }

    /// A credentials block assuming the test role through the local STS.
    pub fn credentials_yaml(&self, name: &str, external_id: &str) -> String {
        format!(
            r#"  {name}:
    source: default
    assume_role:
      role_arn: {role}
      external_id: {external_id}
      sts_endpoint: {sts}
      sts_region: us-east-1
"#,
            role = self.get("role_arn"),
            sts = self.get("sts_endpoint"),
        )
    }

    /// The usual configuration: one signed Lambda route under /fn/ and extra YAML `routes`.
    pub fn lambda_config(&self, extra_routes: &str) -> String {
        let fn_route = route(
            "fn",
            self.get("lambda_url"),
            "lambda",
            "    match: { path_prefix: /fn/ }\n    strip_prefix: true\n    read_timeout: 2s\n",
        );
        self.config(&format!("{fn_route}{extra_routes}"))
    }

    /// `routes` (YAML list items) with the credential set `app` assuming the test role.
    pub fn config(&self, routes: &str) -> String {
        let app = self.credentials_yaml("app", self.get("external_id"));
        format!("credentials:\n{app}routes:\n{routes}")
    }
}

/// Static keys in the environment, where sigproxy's default chain finds them.
pub fn static_keys(id: &str, secret: &str) -> Vec<(String, String)> {
    let keys = [("AWS_ACCESS_KEY_ID", id), ("AWS_SECRET_ACCESS_KEY", secret)];
    keys.map(|(k, v)| (k.to_string(), v.to_string())).to_vec()
}

/// One route (a YAML list item) signed for `service` in us-east-1 with the set `app`, and
/// `extra` keys (indented four spaces).
pub fn route(name: &str, upstream: &str, service: &str, extra: &str) -> String {
    format!(
        r#"  - name: {name}
    upstream: {upstream}
    service: {service}
    region: us-east-1
    credentials: app
{extra}"#
    )
}

/// Static keys from the environment as the set `app`, a signed Lambda route under /signed/
/// (with `signed_extra` keys) and a pass-through route under /open/, both to `upstream`.
pub fn signed_and_open(upstream: &str, signed_extra: &str) -> String {
    format!(
        r#"credentials:
  app:
    source: default
routes:
  - name: signed
    match: {{ path_prefix: /signed/ }}
    strip_prefix: true
    upstream: {upstream}
    service: lambda
    region: us-east-1
    credentials: app
{signed_extra}  - name: open
    match: {{ path_prefix: /open/ }}
    strip_prefix: true
    upstream: {upstream}
"#
    )
}

impl Drop for Peers {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A token file in `dir` holding `token`, and the `access` block that reads it.
pub fn bearer_token_file(dir: &Path, token: &str) -> (PathBuf, String) {
    let file = dir.join("token");
    std::fs::write(&file, token).unwrap();
    let access = format!("access:\n  bearer_token_file: {}\n", file.display());
    (file, access)
}

/// Replaces the token in `file` the way a Kubernetes Secret is: written aside, then renamed.
pub fn rotate_token_file(file: &Path, token: &str) {
    let tmp = file.with_extension("new");
    std::fs::write(&tmp, token).unwrap();
    std::fs::rename(&tmp, file).unwrap();
}

/// Tries `ok` every 50 ms for up to `limit`; whether it held.
pub fn poll(limit: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !ok() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// Waits up to `limit` for `ok`; panics naming `what` if it never holds.
pub fn wait_until(limit: Duration, what: &str, ok: impl FnMut() -> bool) {
    assert!(poll(limit, ok), "waited {limit:?} in vain for {what}");
}

/// The sigproxy binary under test, with its own config file and ports.
pub struct Proxy {
    child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    log: PathBuf,
    config: PathBuf,
    /// Shared with processes started by `upgrade`, which use the same configuration.
    dir: std::sync::Arc<tempfile::TempDir>,
}

impl Proxy {
    /// Starts sigproxy with `body` (YAML without listen addresses) and waits for `/healthz`.
    pub fn start(body: &str, env: &[(String, String)]) -> Proxy {
        Self::start_with_args(body, env, &[])
    }

    /// [`Proxy::start`], then waits until `/readyz` says 200.
    pub fn start_ready(body: &str, env: &[(String, String)]) -> Proxy {
        let proxy = Proxy::start(body, env);
        proxy.wait_ready();
        proxy
    }

    pub fn start_with_args(body: &str, env: &[(String, String)], args: &[&str]) -> Proxy {
        Proxy::builder(body).env(env).args(args).start()
    }

    /// Starts sigproxy with `body` (YAML without listen addresses), with options.
    pub fn builder(body: &str) -> ProxyBuilder {
        ProxyBuilder {
            body: Some(body.into()),
            env: Vec::new(),
            args: Vec::new(),
            core: None,
            keep_log: true,
            upgradable: false,
        }
    }

    /// Starts sigproxy with aws-sigv4-proxy's flags (no file) on its own ports, and waits until
    /// ready. `args` must not name `--port` or `--admin-listen`.
    pub fn start_flags(args: &[&str], env: &[(String, String)]) -> Proxy {
        let proxy = ProxyBuilder {
            body: None,
            ..Proxy::builder("")
        }
        .args(args)
        .env(env)
        .start();
        proxy.wait_ready();
        proxy
    }

    /// Waits up to 20 s for `ok`; panics with the log if it never holds or sigproxy exits.
    pub fn wait_for(&self, what: &str, mut ok: impl FnMut() -> bool) {
        let held = poll(Duration::from_secs(20), || {
            ok() || {
                assert!(!self.exited(), "sigproxy exited; log:\n{}", self.log());
                false
            }
        });
        assert!(held, "waited in vain for {what}; log:\n{}", self.log());
    }

    /// The exit code, once the process has ended with one.
    fn exit_code(&mut self) -> Option<i32> {
        self.child.try_wait().ok().flatten()?.code()
    }

    /// The process has ended (a zombie, or gone).
    fn exited(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).map_or(true, |stat| {
            stat.rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z'))
        })
    }

    /// Waits until `/readyz` says 200 (credentials loaded).
    pub fn wait_ready(&self) -> &Self {
        self.wait_for("/readyz", || self.admin_get("/readyz").status == 200);
        self
    }

    /// Sends raw bytes on a new connection; the response, if one came before the close.
    pub fn raw(&self, bytes: impl AsRef<[u8]>) -> Option<Response> {
        let mut conn = Conn::open(self.addr);
        conn.write(bytes.as_ref());
        conn.read()
    }

    pub fn admin_get(&self, path: &str) -> Response {
        request(self.admin, "GET", path, &[], b"")
    }

    pub fn get(&self, path: &str) -> Response {
        request(self.addr, "GET", path, &[], b"")
    }

    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        request(self.addr, method, path, headers, body)
    }

    /// The value of one series on `/metrics`: `name` with (at least) these labels.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let text = String::from_utf8(self.admin_get("/metrics").body).unwrap();
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find(|l| {
                let Some(rest) = l.strip_prefix(name) else {
                    return false;
                };
                (rest.starts_with('{') || rest.starts_with(' '))
                    && labels
                        .iter()
                        .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    /// `sigproxy_denied_requests_total` for one route and reason.
    /// A refusal is counted after its answer is written (the logging phase), so a scrape right
    /// after the answer can come first: the series is waited for (up to 2 s) before it is read.
    pub fn denied(&self, route: &str, reason: &str) -> Option<f64> {
        let labels = [("route", route), ("reason", reason)];
        let read = || self.metric("sigproxy_denied_requests_total", &labels);
        poll(Duration::from_secs(2), || read().is_some());
        read()
    }

    /// Waits until a series exists and is above zero.
    pub fn wait_for_metric(&self, name: &str, labels: &[(&str, &str)]) {
        self.wait_for(name, || self.metric(name, labels).is_some_and(|v| v > 0.0));
    }

    /// Starts a second sigproxy with the same configuration and `-u`, and waits for it to open
    /// the upgrade socket (see [`ProxyBuilder::upgradable`]): it takes over this one's listening
    /// sockets once this one gets SIGQUIT.
    pub fn upgrade(&self, env: &[(String, String)]) -> Proxy {
        // Each upgrade its own log: a second one must not truncate the first's.
        let log = (1..)
            .map(|n| self.dir.path().join(format!("sigproxy-upgraded-{n}.log")))
            .find(|path| !path.exists())
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sigproxy"));
        cmd.arg("-c")
            .arg(&self.config)
            .arg("-u")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        isolate_aws_env(&mut cmd, self.dir.path());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let new = Proxy {
            child: cmd.spawn().expect("start the upgraded sigproxy"),
            addr: self.addr,
            admin: self.admin,
            log,
            config: self.config.clone(),
            dir: self.dir.clone(),
        };
        let socket = self.dir.path().join("upgrade.sock");
        new.wait_for("the upgrade socket", || socket.exists());
        new
    }

    /// The `-c` file it runs with.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A memory figure from /proc/PID/status in MiB: `VmRSS` now, `VmHWM` at peak.
    pub fn memory_mib(&self, field: &str) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap()
            / 1024.0
    }

    /// Sends a signal by name (TERM, QUIT, ...) with kill(1).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits up to `limit` for the process to exit; its exit status, if it did.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let mut status = None;
        poll(limit, || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        status
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Options for [`Proxy::builder`].
#[derive(Clone)]
pub struct ProxyBuilder {
    /// The configuration file's YAML; `None`: flags only (`--port`, `--admin-listen` added).
    body: Option<String>,
    env: Vec<(String, String)>,
    args: Vec<String>,
    core: Option<usize>,
    keep_log: bool,
    upgradable: bool,
}

impl ProxyBuilder {
    /// Environment variables (after the isolating ones and `RUST_LOG=info`, so they win).
    pub fn env(mut self, env: &[(String, String)]) -> ProxyBuilder {
        self.env.extend_from_slice(env);
        self
    }

    /// Command-line arguments after `-c FILE`.
    pub fn args(mut self, args: &[&str]) -> ProxyBuilder {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Runs sigproxy on this CPU core only (with taskset), where given.
    pub fn pin_to_core(mut self, core: Option<usize>) -> ProxyBuilder {
        self.core = core;
        self
    }

    /// Sends the log to /dev/null (long benchmarks would fill the disk); `log()` is empty.
    pub fn discard_log(mut self) -> ProxyBuilder {
        self.keep_log = false;
        self
    }

    /// Sets `upgrade_socket` (in the proxy's own directory), for [`Proxy::upgrade`].
    pub fn upgradable(mut self) -> ProxyBuilder {
        self.upgradable = true;
        self
    }

    /// Starts it and waits until its own sockets listen on both ports and `/healthz` says 200.
    pub fn start(self) -> Proxy {
        // A port free when chosen can be taken by another test before sigproxy binds it;
        // sigproxy then exits saying so, and is started again on other ports.
        let mut refused = String::new();
        for _ in 0..5 {
            match self.clone().launch() {
                Ok(proxy) => return proxy,
                Err(log) => refused = log,
            }
        }
        panic!(
            "sigproxy could not listen, on five pairs of ports found free; last log:\n{refused}"
        );
    }

    /// One start on newly chosen ports; `Err(log)` if the ports were taken first.
    fn launch(self) -> Result<Proxy, String> {
        let dir = tempfile::tempdir().unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        // Two free ports can be the same one, freed and handed out again.
        let admin = (0..100).map(|_| free_port()).find(|p| *p != addr.port());
        let admin: SocketAddr = format!("127.0.0.1:{}", admin.unwrap()).parse().unwrap();
        let config = dir.path().join("sigproxy.yaml");
        let mut head = vec!["-c".to_string(), config.display().to_string()];
        match &self.body {
            Some(body) => {
                let grace = match body.contains("shutdown_grace:") {
                    true => "",
                    false => "shutdown_grace: 1s\n",
                };
                let mut yaml = format!("listen: {addr}\nadmin_listen: {admin}\n{grace}");
                if self.upgradable {
                    let socket = dir.path().join("upgrade.sock");
                    yaml.push_str(&format!("upgrade_socket: {}\n", socket.display()));
                }
                yaml.push_str(body);
                std::fs::write(&config, yaml).unwrap();
            }
            None => {
                head = [
                    "--port",
                    &addr.to_string(),
                    "--admin-listen",
                    &admin.to_string(),
                ]
                .map(String::from)
                .to_vec();
            }
        }
        let log = dir.path().join("sigproxy.log");
        let binary = env!("CARGO_BIN_EXE_sigproxy");
        let mut cmd = match self.core {
            Some(core) => {
                let mut c = Command::new("taskset");
                c.args(["-c", &core.to_string(), binary]);
                c
            }
            None => Command::new(binary),
        };
        let (stdout, stderr) = match self.keep_log {
            true => (
                Stdio::from(std::fs::File::create(dir.path().join("stdout.log")).unwrap()),
                Stdio::from(std::fs::File::create(&log).unwrap()),
            ),
            false => (Stdio::null(), Stdio::null()),
        };
        let (first, then) = match self.body {
            Some(_) => (head, self.args),
            None => (self.args, head),
        };
        cmd.args(first)
            .args(then)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        isolate_aws_env(&mut cmd, dir.path());
        cmd.env("RUST_LOG", "info");
        cmd.envs(self.env);
        let mut proxy = Proxy {
            child: cmd.spawn().expect("start sigproxy"),
            addr,
            admin,
            log,
            config,
            dir: std::sync::Arc::new(dir),
        };
        let pid = proxy.pid();
        let listening = || {
            listened_on_by(pid, addr.port())
                && listened_on_by(pid, admin.port())
                && try_request(admin, "GET", "/healthz", &[], b"").is_some_and(|r| r.status == 200)
        };
        let up = poll(Duration::from_secs(20), || listening() || proxy.exited());
        if up && !proxy.exited() {
            return Ok(proxy);
        }
        let (log, code) = (proxy.log(), proxy.exit_code());
        // A discarded log cannot say why: a start that ended in exit 1 is tried again.
        match log.contains("cannot listen on") || (!self.keep_log && code == Some(1)) {
            true => Err(log),
            false => panic!("sigproxy did not start listening; log:\n{log}"),
        }
    }
}

/// Keeps the machine's own AWS setup (files, env, IMDS) out of the test.
pub fn isolate_aws_env(cmd: &mut Command, home: &Path) {
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("HOME", home)
        .env("AWS_CONFIG_FILE", home.join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            home.join("no-aws-credentials"),
        )
        .env("AWS_EC2_METADATA_DISABLED", "true");
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Informational (1xx) statuses received before the final one.
    pub interim: Vec<u16>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        header_in(&self.headers, name)
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {} body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body as text (invalid UTF-8 replaced), for messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `error.code` of a sigproxy JSON error body.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

/// The value of header `name` (any case) in a list of headers.
pub fn header_in<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// One request on a fresh connection; panics on I/O errors.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    try_request(addr, method, path, headers, body)
        .unwrap_or_else(|| panic!("{method} {path} to {addr} failed"))
}

pub fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<Response> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let has_length = headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-length"));
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !chunked && !has_length && (!body.is_empty() || matches!(method, "POST" | "PUT")) {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let expect = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("expect") && v.eq_ignore_ascii_case("100-continue"));

    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    stream.write_all(head.as_bytes()).ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut interim = Vec::new();
    if expect {
        // Wait for the proxy's go-ahead before sending the body, as curl does.
        let (status, headers) = read_head(&mut reader)?;
        if status != 100 {
            return read_body(&mut reader, status, headers, interim);
        }
        interim.push(100);
    }
    if chunked {
        // Several chunks of uneven sizes.
        for piece in body.chunks(7919) {
            stream
                .write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                .ok()?;
            stream.write_all(piece).ok()?;
            stream.write_all(b"\r\n").ok()?;
        }
        stream.write_all(b"0\r\n\r\n").ok()?;
    } else {
        // The proxy may answer (e.g. 413) and close before reading it all: ignore write errors.
        let _ = stream.write_all(body);
    }
    loop {
        let (status, headers) = read_head(&mut reader)?;
        if (100..200).contains(&status) {
            interim.push(status);
            continue;
        }
        if method == "HEAD" {
            return Some(Response {
                status,
                headers,
                body: Vec::new(),
                interim,
            });
        }
        return read_body(&mut reader, status, headers, interim);
    }
}

/// A response's status and headers; `None` if the connection closed first.
pub fn read_head(reader: &mut BufReader<TcpStream>) -> Option<(u16, Vec<(String, String)>)> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let status: u16 = line.split_whitespace().nth(1)?.parse().ok()?;
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    Some((status, headers))
}

fn read_body(
    reader: &mut BufReader<TcpStream>,
    status: u16,
    headers: Vec<(String, String)>,
    interim: Vec<u16>,
) -> Option<Response> {
    let get = |name: &str| header_in(&headers, name);
    let mut body = Vec::new();
    if let Some(len) = get("content-length") {
        let len: usize = len.parse().ok()?;
        body.resize(len, 0);
        reader.read_exact(&mut body).ok()?;
    } else if get("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            if size == 0 {
                let mut end = String::new();
                reader.read_line(&mut end).ok()?;
                break;
            }
            let mut chunk = vec![0; size];
            reader.read_exact(&mut chunk).ok()?;
            body.extend_from_slice(&chunk);
            let mut crlf = String::new();
            reader.read_line(&mut crlf).ok()?;
        }
    } else {
        let _ = reader.read_to_end(&mut body);
    }
    Some(Response {
        status,
        headers,
        body,
        interim,
    })
}

/// A keep-alive client connection: several requests, one after another, on one TCP stream.
pub struct Conn {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Conn { stream, reader }
    }

    /// Connects, or says why not (a refused connection is an outcome some tests count).
    pub fn try_open(addr: SocketAddr) -> std::io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let reader = BufReader::new(stream.try_clone()?);
        Ok(Conn { stream, reader })
    }

    /// One request with a body; `None` if the connection broke or closed before the response.
    pub fn try_send(&mut self, method: &str, path: &str, body: &[u8]) -> Option<Response> {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        self.stream.write_all(head.as_bytes()).ok()?;
        self.stream.write_all(body).ok()?;
        self.read()
    }

    /// Writes raw bytes (a request or part of one).
    pub fn write(&mut self, raw: &[u8]) {
        self.stream.write_all(raw).unwrap();
    }

    /// Reads one response; `None` if the connection closed first.
    pub fn read(&mut self) -> Option<Response> {
        let (status, headers) = read_head(&mut self.reader)?;
        read_body(&mut self.reader, status, headers, Vec::new())
    }

    /// Reads raw bytes until `marker` has been seen; returns them.
    pub fn read_until(&mut self, marker: &[u8]) -> Vec<u8> {
        let mut seen = Vec::new();
        let mut byte = [0u8; 1];
        while !seen.ends_with(marker) {
            self.reader
                .read_exact(&mut byte)
                .expect("connection closed early");
            seen.push(byte[0]);
        }
        seen
    }

    /// Reads whatever comes until the connection closes (or 30 s pass).
    pub fn read_to_end(&mut self) -> Vec<u8> {
        let mut rest = Vec::new();
        let _ = self.reader.read_to_end(&mut rest);
        rest
    }

    pub fn send(&mut self, method: &str, path: &str, body: &[u8]) -> Response {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        self.write(head.as_bytes());
        self.write(body);
        self.read()
            .expect("a response on the kept-alive connection")
    }
}

/// Deterministic pseudo-random bytes (no two equal blocks, so hashing mistakes show).
pub fn bytes(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ n as u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub fn sha256_hex(data: &[u8]) -> String {
    sigproxy::sign::sha256_hex(data)
}

/// rclone (`binary`) with one anonymous S3 remote, `x:`, pointing at the proxy, and no config
/// file of its own.
pub fn rclone_command(binary: &Path, proxy: SocketAddr, home: &Path) -> Command {
    let mut cmd = Command::new(binary);
    cmd.args(["--config", "/dev/null"])
        .env("RCLONE_CONFIG_X_TYPE", "s3")
        .env("RCLONE_CONFIG_X_PROVIDER", "Other")
        .env("RCLONE_CONFIG_X_ENV_AUTH", "false")
        .env("RCLONE_CONFIG_X_ENDPOINT", format!("http://{proxy}"))
        .env("HOME", home);
    cmd
}
