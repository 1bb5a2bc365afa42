//! One small HTTP/1.1 client for the tests: the bridge's endpoints,
//! Prometheus's API and chromedriver. It reads the answer by its
//! content-length or chunks, since a server may keep the connection open
//! whatever the request says (chromedriver does).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// `method path` on 127.0.0.1:`port` with an optional JSON `body`: (status
/// code, body), or None if nothing answers.
pub fn request(port: u16, method: &str, path: &str, body: Option<&str>) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .ok()?;
    let body = body.unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let (head, payload) = read_response(&mut stream)?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, payload))
}

/// The head and the body of an answer.
fn read_response(stream: &mut TcpStream) -> Option<(String, String)> {
    let mut received = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(at) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        received.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&received[..head_end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|n| n.trim().parse::<usize>().ok());
    let chunked = length.is_none() && head.contains("transfer-encoding: chunked");
    let complete = |received: &[u8]| match length {
        Some(length) => received.len() >= head_end + length,
        None => chunked && received.ends_with(b"0\r\n\r\n"),
    };
    while !complete(&received) {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&chunk[..n]),
            // Without a length, the server's close (or silence) ends the body.
            Err(_) if length.is_none() && !chunked => break,
            Err(_) => return None,
        }
    }
    let body = &received[head_end..];
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_vec()
    };
    Some((head, String::from_utf8_lossy(&body).into_owned()))
}

fn dechunk(mut chunked: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = chunked.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&chunked[..line_end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
            .unwrap_or(0);
        let rest = &chunked[line_end + 2..];
        if size == 0 || rest.len() < size {
            break;
        }
        out.extend_from_slice(&rest[..size]);
        chunked = rest[size..].strip_prefix(b"\r\n").unwrap_or(&rest[size..]);
    }
    out
}
