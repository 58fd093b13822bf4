//! One stand-in upstream for every test and benchmark: a small HTTP/1.1 server on 127.0.0.1:0
//! (one thread per connection) that answers, records, stays silent or relays, and stops when
//! dropped.
//!
//! ```ignore
//! let up = Upstream::builder().record().start();                 // 200 `ok`, remembered
//! let up = Upstream::builder().answer(|r| Reply::ok(r.target.clone())).start();
//! let up = Upstream::builder().silent().start();                 // accepts, never answers
//! let up = Upstream::builder().relay_to(addr).flip_body_byte(300).start();
//! ```

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A request as the upstream received it. Header names are lower-case.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// The request target: path and query.
    pub target: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
    /// Read for [`Builder::answer`] handlers; left empty for [`Builder::answer_stream`].
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        super::header_in(&self.headers, name)
    }

    fn content_length(&self) -> u64 {
        self.header("content-length")
            .map_or(0, |v| v.parse().unwrap())
    }
}

enum Body {
    Bytes(Vec<u8>),
    /// `len` copies of one byte, written in blocks (for large answers).
    Repeat(u8, u64),
}

/// An answer: status, headers, a body (Content-Length is added), or a cut-off one.
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Body,
    /// Hang up after this many body bytes, before the promised length.
    cut_off: Option<usize>,
    /// Wait this long after this many body bytes, then send the rest.
    pause: Option<(usize, Duration)>,
    /// Bytes sent after the body, beyond its promised length.
    trailing: Vec<u8>,
}

impl Reply {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Body::Bytes(body.into()),
            cut_off: None,
            pause: None,
            trailing: Vec::new(),
        }
    }

    pub fn ok(body: impl Into<Vec<u8>>) -> Reply {
        Reply::new(200, body)
    }

    /// 200 with `len` bytes of `byte`, written as long as the reader takes them.
    pub fn repeat(byte: u8, len: u64) -> Reply {
        Reply {
            body: Body::Repeat(byte, len),
            ..Reply::ok("")
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sends only the first `sent` bytes of the body, then closes the connection.
    pub fn cut_off(mut self, sent: usize) -> Reply {
        self.cut_off = Some(sent);
        self
    }

    /// Stops for `wait` after the first `sent` bytes of the body, then sends the rest.
    pub fn pause(mut self, sent: usize, wait: Duration) -> Reply {
        self.pause = Some((sent, wait));
        self
    }

    /// Sends `bytes` after the body, beyond its promised length (as if a second response).
    pub fn trailing(mut self, bytes: &[u8]) -> Reply {
        self.trailing = bytes.to_vec();
        self
    }

    /// Writes the reply; false when the connection must close after it.
    fn write(&self, out: &mut TcpStream, head_only: bool, close: bool) -> bool {
        let len = match &self.body {
            Body::Bytes(b) => b.len() as u64,
            Body::Repeat(_, n) => *n,
        };
        let reason = http::StatusCode::from_u16(self.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Status");
        let mut head = format!("HTTP/1.1 {} {reason}\r\n", self.status);
        for (k, v) in &self.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if close {
            head.push_str("Connection: close\r\n");
        }
        head.push_str(&format!("Content-Length: {len}\r\n\r\n"));
        let mut bytes = head.into_bytes();
        let head_len = bytes.len();
        match &self.body {
            _ if head_only => {}
            Body::Bytes(b) => bytes.extend_from_slice(&b[..self.cut_off.unwrap_or(b.len())]),
            Body::Repeat(byte, n) => {
                if out.write_all(&bytes).is_err() {
                    return false;
                }
                let block = vec![*byte; 64 * 1024];
                let mut left = self.cut_off.map_or(*n, |c| c as u64);
                while left > 0 {
                    let k = left.min(block.len() as u64) as usize;
                    if out.write_all(&block[..k]).is_err() {
                        return false;
                    }
                    left -= k as u64;
                }
                return !close && self.cut_off.is_none();
            }
        }
        if let Some((sent, wait)) = self.pause {
            let at = (head_len + sent).min(bytes.len());
            if out.write_all(&bytes[..at]).is_err() {
                return false;
            }
            std::thread::sleep(wait);
            bytes.drain(..at);
        }
        bytes.extend_from_slice(&self.trailing);
        // Head and body in one write: no small-packet delay between them.
        out.write_all(&bytes).is_ok() && !close && self.cut_off.is_none()
    }
}

type Handler = dyn Fn(&mut Request, &mut dyn Read) -> Reply + Send + Sync;

enum Mode {
    Answer(Arc<Handler>),
    Silent,
    Relay {
        target: SocketAddr,
        flip_body_byte: Option<usize>,
    },
}

pub struct Builder {
    mode: Mode,
    record: bool,
    port: u16,
}

/// The running stand-in. Dropping it stops accepting and closes its connections.
pub struct Upstream {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    seen: Mutex<Vec<Request>>,
    connections: AtomicUsize,
    refusing: AtomicBool,
    stopped: AtomicBool,
    /// The connections still open, by number, so that Drop can close them.
    open: Mutex<HashMap<usize, TcpStream>>,
}

impl Upstream {
    /// By default: keep-alive, every request answered `200 ok`, nothing recorded.
    pub fn builder() -> Builder {
        Builder {
            mode: Mode::Answer(Arc::new(|req, body| {
                read_body(req, body);
                Reply::ok("ok")
            })),
            record: false,
            port: 0,
        }
    }

    /// `http://ADDR`, for a route's `upstream:`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The requests received so far (with [`Builder::record`]).
    pub fn requests(&self) -> Vec<Request> {
        self.shared.seen.lock().unwrap().clone()
    }

    pub fn last_request(&self) -> Request {
        self.requests()
            .pop()
            .expect("a request reached the upstream")
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// While set, new connections are accepted and closed at once (a peer that went away);
    /// connections already open carry on.
    pub fn refuse(&self, refusing: bool) {
        self.shared.refusing.store(refusing, Ordering::SeqCst);
    }
}

impl Builder {
    /// Remember every request (see [`Upstream::requests`]).
    pub fn record(mut self) -> Builder {
        self.record = true;
        self
    }

    /// Answer each request (its body read into [`Request::body`]) with `answer(request)`.
    pub fn answer(self, answer: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Builder {
        self.answer_stream(move |req, body| {
            read_body(req, body);
            answer(req)
        })
    }

    /// Answer each request with `answer(head, body)`, the body a stream the handler may read
    /// (what it leaves is skipped).
    pub fn answer_stream(
        mut self,
        answer: impl Fn(&mut Request, &mut dyn Read) -> Reply + Send + Sync + 'static,
    ) -> Builder {
        self.mode = Mode::Answer(Arc::new(answer));
        self
    }

    /// Accept connections and never answer (proves nothing was forwarded).
    pub fn silent(mut self) -> Builder {
        self.mode = Mode::Silent;
        self
    }

    /// Relay every connection to `target`, byte for byte.
    pub fn relay_to(mut self, target: SocketAddr) -> Builder {
        self.mode = Mode::Relay {
            target,
            flip_body_byte: None,
        };
        self
    }

    /// With [`Builder::relay_to`]: flip one bit of the byte `offset` bytes into each
    /// connection's first request body.
    pub fn flip_body_byte(mut self, offset: usize) -> Builder {
        if let Mode::Relay { flip_body_byte, .. } = &mut self.mode {
            *flip_body_byte = Some(offset);
        }
        self
    }

    /// Listen on this port of 127.0.0.1 instead of a free one.
    pub fn port(mut self, port: u16) -> Builder {
        self.port = port;
        self
    }

    pub fn start(self) -> Upstream {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let state = shared.clone();
        let mode = Arc::new(self.mode);
        let record = self.record;
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                if state.stopped.load(Ordering::SeqCst) {
                    return;
                }
                let id = state.connections.fetch_add(1, Ordering::SeqCst);
                if state.refusing.load(Ordering::SeqCst) {
                    continue;
                }
                let _ = conn.set_nodelay(true);
                if let Ok(clone) = conn.try_clone() {
                    state.open.lock().unwrap().insert(id, clone);
                }
                let (mode, state) = (mode.clone(), state.clone());
                std::thread::spawn(move || {
                    match &*mode {
                        Mode::Answer(handler) => serve(&conn, &**handler, record.then_some(&state)),
                        Mode::Silent => {
                            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                            let _ = (&conn).read(&mut [0u8; 1024]);
                        }
                        Mode::Relay {
                            target,
                            flip_body_byte,
                        } => relay(&conn, *target, *flip_body_byte),
                    }
                    // Closed when done, though Drop holds a handle to it.
                    let _ = conn.shutdown(Shutdown::Both);
                    state.open.lock().unwrap().remove(&id);
                });
            }
        });
        Upstream { addr, shared }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which sees the flag and ends (closing the listener).
        let _ = TcpStream::connect(self.addr);
        for (_, conn) in self.shared.open.lock().unwrap().drain() {
            let _ = conn.shutdown(Shutdown::Both);
        }
    }
}

fn read_body(req: &mut Request, body: &mut dyn Read) {
    let _ = body.read_to_end(&mut req.body);
}

/// Keep-alive request loop; an HTTP/1.0 request is answered and the connection closed, as
/// real servers do.
fn serve(conn: &TcpStream, handler: &Handler, record: Option<&Shared>) {
    let Ok(mut writer) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::with_capacity(64 * 1024, conn);
    while let Some(mut req) = read_request_head(&mut reader) {
        let mut body = (&mut reader).take(req.content_length());
        let reply = handler(&mut req, &mut body);
        if std::io::copy(&mut body, &mut std::io::sink()).is_err() {
            return;
        }
        let close = req.version == "HTTP/1.0";
        let head_only = req.method == "HEAD";
        if let Some(shared) = record {
            shared.seen.lock().unwrap().push(req);
        }
        if !reply.write(&mut writer, head_only, close) {
            return;
        }
    }
}

fn read_request_head(reader: &mut impl BufRead) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    let mut req = Request {
        method: method.into(),
        target: target.into(),
        version: version.into(),
        headers: Vec::new(),
        body: Vec::new(),
    };
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            return Some(req);
        }
        let (k, v) = h.split_once(':')?;
        req.headers
            .push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
}

fn relay(client: &TcpStream, target: SocketAddr, flip_body_byte: Option<usize>) {
    let Ok(server) = TcpStream::connect(target) else {
        return;
    };
    let (Ok(mut from_server), Ok(mut to_client)) = (server.try_clone(), client.try_clone()) else {
        return;
    };
    let answers = std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_server, &mut to_client);
        let _ = to_client.shutdown(Shutdown::Write);
    });
    let (mut from_client, mut to_server) = (client, server);
    let mut seen = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let mut flip = flip_body_byte;
    while let Ok(n) = from_client.read(&mut buf) {
        if n == 0 {
            break;
        }
        if let Some(offset) = flip {
            let start = seen.len();
            seen.extend_from_slice(&buf[..n]);
            if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                let at = end + 4 + offset;
                if at >= start && at < seen.len() {
                    buf[at - start] ^= 0x01;
                    flip = None;
                }
            }
        }
        if to_server.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to_server.shutdown(Shutdown::Write);
    let _ = answers.join();
}
