//! Bodies in the form current AWS SDKs send uploads in (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`):
//! aws-chunked, unsigned chunks, a checksum trailer; and the checksums they carry, computed here
//! from their definitions (no code shared with sigproxy).

use std::io::Write;
use std::net::SocketAddr;

/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> String {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for group in data.chunks(3) {
        let mut bits = 0u32;
        for (i, &b) in group.iter().enumerate() {
            bits |= u32::from(b) << (16 - 8 * i);
        }
        for i in 0..4 {
            if i <= group.len() {
                out.push(alphabet[((bits >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A running CRC-32 (IEEE), table-driven so hundreds of MiB go quickly in a debug build.
pub struct Crc32 {
    table: [u32; 256],
    crc: u32,
}

impl Default for Crc32 {
    fn default() -> Self {
        let mut table = [0u32; 256];
        for (n, entry) in table.iter_mut().enumerate() {
            let mut c = n as u32;
            for _ in 0..8 {
                c = (c >> 1) ^ (0xEDB8_8320 & (c & 1).wrapping_neg());
            }
            *entry = c;
        }
        Crc32 { table, crc: !0 }
    }
}

impl Crc32 {
    pub fn update(&mut self, data: &[u8]) {
        for &byte in data {
            self.crc = self.table[((self.crc ^ u32::from(byte)) & 0xff) as usize] ^ (self.crc >> 8);
        }
    }

    /// The value of an `x-amz-checksum-crc32` trailer.
    pub fn base64(&self) -> String {
        base64(&(!self.crc).to_be_bytes())
    }
}

/// CRC-32 (IEEE) of `data`, base64: the value of an `x-amz-checksum-crc32` trailer.
pub fn crc32_base64(data: &[u8]) -> String {
    let mut crc = Crc32::default();
    crc.update(data);
    crc.base64()
}

/// `body` framed as botocore frames it: 64 KiB chunks, then the trailer line `trailer`
/// (`name:value`).
pub fn framed(body: &[u8], trailer: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in body.chunks(64 * 1024) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("0\r\n{trailer}\r\n\r\n").as_bytes());
    out
}

/// The headers of such an upload of `decoded` bytes with a `trailer` checksum, as boto3 sends
/// them without credentials (no content hash) or with them (`sha`).
pub fn upload_headers(decoded: usize, trailer: &str, sha: Option<&str>) -> Vec<(String, String)> {
    let mut headers = vec![
        ("content-encoding".to_string(), "aws-chunked".to_string()),
        ("x-amz-trailer".to_string(), trailer.to_string()),
        (
            "x-amz-decoded-content-length".to_string(),
            decoded.to_string(),
        ),
    ];
    if let Some(sha) = sha {
        headers.push(("x-amz-content-sha256".to_string(), sha.to_string()));
    }
    headers
}

/// Sends `PUT path` with `headers` and an aws-chunked body streamed from `pieces` (each an
/// already framed piece), never holding the whole body; the response's status and body.
pub fn put_streamed(
    addr: SocketAddr,
    path: &str,
    headers: &[(String, String)],
    content_length: u64,
    pieces: impl Iterator<Item = Vec<u8>>,
) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(120)))
        .unwrap();
    let mut head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Length: {content_length}\r\n"
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    for piece in pieces {
        if stream.write_all(&piece).is_err() {
            break; // answered early; the answer says why
        }
    }
    let mut reader = std::io::BufReader::new(stream);
    let (status, _) = super::read_head(&mut reader).expect("a response");
    // Connection: close: the body runs to the end (its framing, if chunked, is left in).
    let mut body = Vec::new();
    let _ = std::io::Read::read_to_end(&mut reader, &mut body);
    (status, String::from_utf8_lossy(&body).into_owned())
}
