//! "minimal relay": the floor under any HTTP/1.1 proxy on this machine. Per client connection
//! it reads a request head (httparse), forwards head and body on one upstream connection of its
//! own (opened at the first request, kept for the client connection's life), then relays the
//! response head and body back; and again, for as long as the client keeps the connection.
//!
//! Its CPU per request is the kernel's loopback TCP work (each byte is sent twice and received
//! twice) plus as little user space as forwarding allows: one current-thread tokio runtime
//! (one thread, as sigproxy's `threads: 1`), one task per client connection, a read and a write
//! per piece, no copies beyond the one buffer per direction. mimalloc is the allocator (set in
//! `load.rs`), though the relay allocates only per connection.
//!
//! "minimal relay + SigV4" (`signing`): the same relay signing each request as sigproxy's signed
//! route does, with sigproxy's own [`Signer`]: the head parsed into a pingora `RequestHeader`,
//! the whole body read and its SHA-256 taken (Lambda signs the body), the SigV4 headers added
//! (session-token credentials, the bench's), the head written anew and sent with the body in
//! one vectored write. The floor under any proxy that signs as sigproxy does: no routes, no
//! checks, no deadlines, no metrics, no access log, no pingora session.
//!
//! Only what the benchmark sends: bodies framed by Content-Length (absent means none), no
//! chunked encoding, no `100 Continue`, no HEAD requests, no checks, no timeouts. A message it
//! cannot frame ends the connection.

use bytes::{Buf, BufMut, BytesMut};
use pingora::http::RequestHeader;
use sigproxy::sign::{sha256_hex, Signer};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One buffer per direction and connection: a head must fit in it; bodies go through it in
/// pieces of up to this size (pingora's body reads are 64 KiB too).
const BUFFER: usize = 64 * 1024;
/// Header lines a head may have.
const HEADERS: usize = 64;

/// Serves on `listen` until killed; signs each request with `signer` when given.
pub fn serve(listen: SocketAddr, backend: SocketAddr, signer: Option<Signer>) -> ! {
    let signer = signer.map(Arc::new);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async move {
        let listener = TcpListener::bind(listen).await.expect("listen");
        loop {
            let Ok((client, _)) = listener.accept().await else {
                continue;
            };
            let signer = signer.clone();
            tokio::spawn(async move {
                // A connection that fails (or is closed mid-message) just ends.
                let _ = relay(client, backend, signer.as_deref()).await;
            });
        }
    })
}

/// Relays requests from `client` and their responses until either side closes.
async fn relay(
    mut client: TcpStream,
    backend: SocketAddr,
    signer: Option<&Signer>,
) -> io::Result<()> {
    client.set_nodelay(true)?;
    let mut upstream: Option<TcpStream> = None;
    let (mut requests, mut responses) = (Buffer::new(), Buffer::new());
    loop {
        let Some(length) = requests.head(&mut client, request_length).await? else {
            return Ok(()); // the client closed between requests
        };
        let server = match &mut upstream {
            Some(server) => server,
            None => {
                let server = TcpStream::connect(backend).await?;
                server.set_nodelay(true)?;
                upstream.insert(server)
            }
        };
        match signer {
            Some(signer) => requests.sign(signer, &mut client, server).await?,
            None => requests.forward(length, &mut client, server).await?,
        }
        let Some(length) = responses.head(server, response_length).await? else {
            return Err(io::ErrorKind::UnexpectedEof.into());
        };
        responses.forward(length, server, &mut client).await?;
    }
}

/// Bytes read from one side and not yet sent to the other (the start of `data`).
struct Buffer {
    data: Box<[u8]>,
    filled: usize,
}

impl Buffer {
    fn new() -> Buffer {
        Buffer {
            data: vec![0; BUFFER].into_boxed_slice(),
            filled: 0,
        }
    }

    /// Reads from `from` until the buffer starts with a complete head; the length of its
    /// message (head and body), as `length` reads it. `None`: `from` closed before a first byte.
    async fn head(
        &mut self,
        from: &mut TcpStream,
        length: fn(&[u8]) -> io::Result<Option<u64>>,
    ) -> io::Result<Option<u64>> {
        loop {
            if let Some(total) = length(&self.data[..self.filled])? {
                return Ok(Some(total));
            }
            if self.filled == self.data.len() {
                return Err(invalid("a head larger than the buffer"));
            }
            match from.read(&mut self.data[self.filled..]).await? {
                0 if self.filled == 0 => return Ok(None),
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => self.filled += n,
            }
        }
    }

    /// Sends the message of `length` bytes that the buffer starts with from `from` to `to`:
    /// what is buffered first, then the rest as it is read. Bytes read past the message (a
    /// pipelined next one) stay in the buffer.
    async fn forward(
        &mut self,
        mut length: u64,
        from: &mut TcpStream,
        to: &mut TcpStream,
    ) -> io::Result<()> {
        loop {
            let n = self
                .filled
                .min(usize::try_from(length).unwrap_or(usize::MAX));
            to.write_all(&self.data[..n]).await?;
            self.data.copy_within(n..self.filled, 0);
            self.filled -= n;
            length -= n as u64;
            if length == 0 {
                return Ok(());
            }
            // The buffer is empty here: read the next piece of the body into all of it.
            match from.read(&mut self.data).await? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => self.filled = n,
            }
        }
    }
}

impl Buffer {
    /// Sends the request the buffer starts with (its head complete) signed: the head parsed,
    /// the whole body read and hashed, the head written anew with the SigV4 headers, head and
    /// body sent in one vectored write. Bytes read past the request stay in the buffer.
    async fn sign(
        &mut self,
        signer: &Signer,
        from: &mut TcpStream,
        to: &mut TcpStream,
    ) -> io::Result<()> {
        let mut headers = [httparse::EMPTY_HEADER; HEADERS];
        let mut parsed = httparse::Request::new(&mut headers);
        let httparse::Status::Complete(head) = parsed
            .parse(&self.data[..self.filled])
            .map_err(|e| invalid(&e.to_string()))?
        else {
            return Err(invalid("an incomplete head"));
        };
        let (Some(method), Some(path)) = (parsed.method, parsed.path) else {
            return Err(invalid("no request line"));
        };
        let length = usize::try_from(body_length(parsed.headers)?)
            .map_err(|_| invalid("a body too large"))?;
        let mut request = RequestHeader::build(method, path.as_bytes(), Some(parsed.headers.len()))
            .map_err(|e| invalid(&e.to_string()))?;
        for header in parsed.headers.iter() {
            let name = http::HeaderName::from_bytes(header.name.as_bytes())
                .map_err(|e| invalid(&e.to_string()))?;
            request
                .append_header(name, header.value)
                .map_err(|e| invalid(&e.to_string()))?;
        }
        // The body: what came with the head, then the rest read to its end.
        let mut body = BytesMut::with_capacity(length);
        let here = (self.filled - head).min(length);
        body.extend_from_slice(&self.data[head..head + here]);
        self.data.copy_within(head + here..self.filled, 0);
        self.filled -= head + here;
        while body.len() < length {
            let left = length - body.len();
            if from.read_buf(&mut (&mut body).limit(left)).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        let credentials = signer
            .current_credentials()
            .map_err(|e| invalid(&e.to_string()))?;
        signer
            .sign(
                &mut request,
                &credentials,
                &sha256_hex(&body),
                SystemTime::now(),
            )
            .map_err(|e| invalid(&e.to_string()))?;
        let mut out = Vec::with_capacity(2048);
        out.extend_from_slice(request.method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(request.raw_path());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        for (name, value) in request.headers.iter() {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        to.write_all_buf(&mut Buf::chain(out.as_slice(), &body[..]))
            .await
    }
}

/// A request's length (head and body) once its head is complete.
fn request_length(bytes: &[u8]) -> io::Result<Option<u64>> {
    let mut headers = [httparse::EMPTY_HEADER; HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(bytes).map_err(|e| invalid(&e.to_string()))? {
        httparse::Status::Complete(head) => Ok(Some(head as u64 + body_length(request.headers)?)),
        httparse::Status::Partial => Ok(None),
    }
}

/// A response's length (head and body) once its head is complete.
fn response_length(bytes: &[u8]) -> io::Result<Option<u64>> {
    let mut headers = [httparse::EMPTY_HEADER; HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(bytes).map_err(|e| invalid(&e.to_string()))? {
        httparse::Status::Complete(head) => Ok(Some(head as u64 + body_length(response.headers)?)),
        httparse::Status::Partial => Ok(None),
    }
}

/// The body length a head's Content-Length says (0 without one). A chunked body is refused
/// rather than misread.
fn body_length(headers: &[httparse::Header]) -> io::Result<u64> {
    let mut length = 0;
    for header in headers {
        if header.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(invalid("Transfer-Encoding is not supported"));
        }
        if header.name.eq_ignore_ascii_case("content-length") {
            length = std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| invalid("a Content-Length that is not a number"))?;
        }
    }
    Ok(length)
}

fn invalid(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.to_string())
}
