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
//! Only what the benchmark sends: bodies framed by Content-Length (absent means none), no
//! chunked encoding, no `100 Continue`, no HEAD requests, no checks, no timeouts. A message it
//! cannot frame ends the connection.

use std::io;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One buffer per direction and connection: a head must fit in it; bodies go through it in
/// pieces of up to this size (pingora's body reads are 64 KiB too).
const BUFFER: usize = 64 * 1024;
/// Header lines a head may have.
const HEADERS: usize = 64;

/// Serves on `listen` until killed.
pub fn serve(listen: SocketAddr, backend: SocketAddr) -> ! {
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
            tokio::spawn(async move {
                // A connection that fails (or is closed mid-message) just ends.
                let _ = relay(client, backend).await;
            });
        }
    })
}

/// Relays requests from `client` and their responses until either side closes.
async fn relay(mut client: TcpStream, backend: SocketAddr) -> io::Result<()> {
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
        requests.forward(length, &mut client, server).await?;
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
