//! HTTP/1.1 for `coe serve` on std's `TcpListener`: one thread per open connection,
//! started when the connection is accepted, so a client that keeps its connection alive
//! holds only its own thread and never delays another's. What a connection may do is
//! bounded: connections open at once (more get a 503 and are closed), the head's size, the
//! body's size (by `Content-Length`, before it is read), and the time a connection may sit
//! idle or stall mid-request. Bodies need a `Content-Length` (OpenAI clients, ureq and curl
//! send one); `Expect: 100-continue` is answered. Each response goes out in one write with
//! `TCP_NODELAY` set, so no response waits on Nagle's algorithm.
//!
//! Stopping closes the listener and the read side of every connection: a request being
//! handled still gets its answer, and every connection thread ends.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::protocol::openai::ErrorBody;

/// An over-limit body up to this size is read and dropped before the refusal is sent.
const DISCARD_MAX_BYTES: usize = 64 << 20;

/// The bounds of the HTTP layer.
#[derive(Debug, Clone)]
pub struct WireLimits {
    /// Connections open at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// How long a connection may wait for its next request, or stall inside one.
    pub idle: Duration,
    /// Request line and headers together.
    pub max_head_bytes: usize,
    pub max_body_bytes: usize,
}

/// A request as the routes see it.
#[derive(Debug)]
pub struct HttpRequest {
    pub method: String,
    /// The target without its query string.
    pub path: String,
    pub body: Vec<u8>,
}

/// A route's answer: the status and a JSON body.
pub type Handler = dyn Fn(&HttpRequest) -> (u16, String) + Send + Sync;

/// The accept loop and its connections.
pub struct Wire {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    open: Arc<Open>,
    accept: Option<JoinHandle<()>>,
}

impl Wire {
    /// Starts accepting on `listener`; each request goes to `handler`.
    pub fn start(
        listener: TcpListener,
        limits: WireLimits,
        handler: Arc<Handler>,
    ) -> std::io::Result<Wire> {
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(HashMap::new()));
        let accept = {
            let (stop, open) = (Arc::clone(&stop), Arc::clone(&open));
            std::thread::Builder::new()
                .name("coe-serve-accept".into())
                .spawn(move || accept_loop(&listener, &limits, &handler, &stop, &open))?
        };
        Ok(Wire {
            addr,
            stop,
            open,
            accept: Some(accept),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets the requests being handled answer, and joins every thread.
    pub fn stop(&mut self) {
        if self.stop.swap(true, Ordering::SeqCst) {
            return;
        }
        // Wake the blocking accept with a connection of our own.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        let threads: Vec<_> = {
            let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
            open.drain()
                .map(|(_, (stream, thread))| {
                    let _ = stream.shutdown(Shutdown::Read);
                    thread
                })
                .collect()
        };
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The open connections by id: a handle to shut each down, and its thread.
type Open = Mutex<HashMap<u64, (TcpStream, JoinHandle<()>)>>;

fn accept_loop(
    listener: &TcpListener,
    limits: &WireLimits,
    handler: &Arc<Handler>,
    stop: &Arc<AtomicBool>,
    open: &Arc<Open>,
) {
    let next = AtomicU64::new(0);
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(mut stream) = stream else {
            // Out of file descriptors and the like: back off instead of spinning.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let _ = stream.set_read_timeout(Some(limits.idle));
        let _ = stream.set_write_timeout(Some(limits.idle));
        let mut table = open.lock().unwrap_or_else(PoisonError::into_inner);
        if table.len() >= limits.max_connections {
            drop(table);
            let msg = format!(
                "the server has {} connections open, its limit; retry later",
                limits.max_connections
            );
            let _ = stream.write_all(&response(503, &error_json(503, &msg), false));
            close_gracefully(&mut stream);
            continue;
        }
        let Ok(own) = stream.try_clone() else {
            continue;
        };
        let id = next.fetch_add(1, Ordering::Relaxed);
        let (limits, handler, stop) = (limits.clone(), Arc::clone(handler), Arc::clone(stop));
        let table_of_thread = Arc::clone(open);
        let thread = std::thread::Builder::new()
            .name(format!("coe-serve-conn-{id}"))
            .spawn(move || {
                serve_connection(&stream, &limits, &*handler, &stop);
                // Closes the connection for every handle on it, then forgets the entry.
                let _ = stream.shutdown(Shutdown::Both);
                table_of_thread
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&id);
            });
        match thread {
            Ok(t) => {
                table.insert(id, (own, t));
            }
            Err(_) => {
                let _ = own.shutdown(Shutdown::Both);
            }
        }
    }
}

/// What ends a connection instead of a request.
enum ReadEnd {
    /// The peer closed, went idle too long between requests, or the server stops.
    Closed,
    /// A request that cannot be answered in place; the status and message are sent, then
    /// the connection is closed (its next request could not be found in the stream).
    Refuse(u16, String),
}

/// Serves requests on one connection until either side closes it.
fn serve_connection(stream: &TcpStream, limits: &WireLimits, handler: &Handler, stop: &AtomicBool) {
    let (Ok(mut out), Ok(input)) = (stream.try_clone(), stream.try_clone()) else {
        return;
    };
    let mut reader = BufReader::new(input);
    loop {
        match read_request(&mut reader, &mut out, limits) {
            Ok((req, keep_alive)) => {
                let (status, body) = handler(&req);
                let keep = keep_alive && !stop.load(Ordering::SeqCst);
                if out.write_all(&response(status, &body, keep)).is_err() || !keep {
                    return;
                }
            }
            Err(ReadEnd::Closed) => return,
            Err(ReadEnd::Refuse(status, msg)) => {
                let _ = out.write_all(&response(status, &error_json(status, &msg), false));
                close_gracefully(&mut out);
                return;
            }
        }
    }
}

/// Reads one request: its head, then its body; says whether the connection stays open.
fn read_request(
    reader: &mut BufReader<TcpStream>,
    out: &mut TcpStream,
    limits: &WireLimits,
) -> Result<(HttpRequest, bool), ReadEnd> {
    let head = read_head(reader, limits.max_head_bytes)?;
    let mut lines = head.split("\r\n").filter(|l| !l.is_empty());
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(refuse(
            400,
            format!("malformed request line {request_line:?}"),
        ));
    };
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        v => return Err(refuse(505, format!("unsupported HTTP version {v:?}"))),
    };
    let mut length = None;
    let mut connection = String::new();
    let mut expect_continue = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(refuse(400, format!("malformed header line {line:?}")));
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                let n = value
                    .parse::<usize>()
                    .map_err(|_| refuse(400, format!("invalid Content-Length {value:?}")))?;
                if length.is_some_and(|m| m != n) {
                    return Err(refuse(400, "conflicting Content-Length headers".into()));
                }
                length = Some(n);
            }
            "transfer-encoding" if !value.eq_ignore_ascii_case("identity") => {
                return Err(refuse(
                    411,
                    format!("Transfer-Encoding {value:?} is not supported: send a Content-Length"),
                ));
            }
            "connection" => connection = value.to_ascii_lowercase(),
            "expect" if value.eq_ignore_ascii_case("100-continue") => expect_continue = true,
            _ => {}
        }
    }
    let length = length.unwrap_or(0);
    if length > limits.max_body_bytes {
        // Read and drop a body of sane size first: a client that writes its whole body
        // before reading would otherwise see a reset instead of the answer.
        if length <= DISCARD_MAX_BYTES {
            let copied = std::io::copy(
                &mut reader.by_ref().take(length as u64),
                &mut std::io::sink(),
            );
            if copied.map_or(true, |n| n < length as u64) {
                return Err(ReadEnd::Closed);
            }
        }
        return Err(refuse(
            400,
            format!(
                "request body of {length} bytes or more is over the limit of {} bytes",
                limits.max_body_bytes
            ),
        ));
    }
    if expect_continue && length > 0 {
        out.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .map_err(|_| ReadEnd::Closed)?;
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).map_err(|_| ReadEnd::Closed)?;
    let keep_alive = if http10 {
        connection.contains("keep-alive")
    } else {
        !connection.contains("close")
    };
    let path = target.split('?').next().unwrap_or_default().to_string();
    Ok((
        HttpRequest {
            method: method.to_string(),
            path,
            body,
        },
        keep_alive,
    ))
}

/// Ends our side and drains what the client still sends for a moment, so that closing
/// with unread bytes does not reset the connection before the client reads our answer.
fn close_gracefully(stream: &mut TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    let mut sink = [0u8; 4096];
    for _ in 0..16 {
        match stream.read(&mut sink) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
}

fn refuse(status: u16, message: String) -> ReadEnd {
    ReadEnd::Refuse(status, message)
}

/// The request line and headers, up to the blank line, at most `max` bytes. Idle time or
/// end of stream before the first byte closes quietly; inside the head it is a 408 / close.
fn read_head(reader: &mut BufReader<TcpStream>, max: usize) -> Result<String, ReadEnd> {
    let mut head = Vec::new();
    loop {
        let before = head.len();
        let n = reader
            .by_ref()
            .take((max + 1 - head.len()) as u64)
            .read_until(b'\n', &mut head);
        match n {
            Ok(0) => return Err(ReadEnd::Closed),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(if head.is_empty() {
                    ReadEnd::Closed
                } else {
                    refuse(408, "the request head did not arrive in time".into())
                });
            }
            Err(_) => return Err(ReadEnd::Closed),
        }
        if head.len() > max {
            return Err(refuse(
                431,
                format!("the request line and headers are over {max} bytes"),
            ));
        }
        // Blank lines before a request line are tolerated (RFC 9112 §2.2).
        if head.ends_with(b"\r\n") && head.len() == before + 2 && before == 0 {
            head.clear();
            continue;
        }
        if head.ends_with(b"\r\n\r\n") || head.ends_with(b"\n\n") {
            break;
        }
    }
    String::from_utf8(head).map_err(|_| refuse(400, "the request head is not UTF-8".into()))
}

fn error_json(status: u16, message: &str) -> String {
    serde_json::to_string(&ErrorBody::new(status, message.to_string())).unwrap_or_default()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        408 => "Request Timeout",
        411 => "Length Required",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Status",
    }
}

/// One whole response, head and body, for a single write.
fn response(status: u16, body: &str, keep_alive: bool) -> Vec<u8> {
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
        reason(status),
        body.len(),
        if keep_alive { "keep-alive" } else { "close" },
    );
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo() -> Arc<Handler> {
        Arc::new(|r: &HttpRequest| {
            (
                200,
                format!(
                    "{{\"method\":\"{}\",\"path\":\"{}\",\"len\":{}}}",
                    r.method,
                    r.path,
                    r.body.len()
                ),
            )
        })
    }

    fn start(max_connections: usize, idle_ms: u64) -> Wire {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let limits = WireLimits {
            max_connections,
            idle: Duration::from_millis(idle_ms),
            max_head_bytes: 1024,
            max_body_bytes: 64,
        };
        Wire::start(listener, limits, echo()).unwrap()
    }

    /// Sends `raw` on a new connection and reads until the server closes it.
    fn exchange(wire: &Wire, raw: &[u8]) -> String {
        let mut s = TcpStream::connect(wire.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(raw).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    #[test]
    fn keep_alive_requests_on_one_connection_then_close() {
        let wire = start(8, 5_000);
        let out = exchange(
            &wire,
            b"GET /a?x=1 HTTP/1.1\r\nHost: h\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
        );
        assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 2, "{out}");
        assert!(out.contains("{\"method\":\"GET\",\"path\":\"/a\",\"len\":0}"));
        assert!(out.contains("{\"method\":\"POST\",\"path\":\"/b\",\"len\":3}"));
        assert!(out.contains("Connection: keep-alive") && out.ends_with("\"len\":3}"));
    }

    #[test]
    fn bad_requests_get_error_objects_and_the_connection_closes() {
        let wire = start(8, 5_000);
        let cases: [(&[u8], &str); 6] = [
            (b"NONSENSE\r\n\r\n", "400 Bad Request"),
            (b"GET / HTTP/2.0\r\n\r\n", "505"),
            (
                b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
                "invalid Content-Length",
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 65\r\n\r\n01234567890123456789012345678901234567890123456789012345678901234",
                "over the limit of 64",
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                "411",
            ),
            (
                b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
                "malformed header",
            ),
        ];
        for (raw, want) in cases {
            let out = exchange(&wire, raw);
            assert!(out.contains(want), "{raw:?}: {out}");
            assert!(out.contains("\"error\""), "{out}");
            assert!(out.contains("Connection: close"), "{out}");
        }
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(2000));
        assert!(exchange(&wire, long.as_bytes()).contains("431"));
    }

    #[test]
    fn expect_100_continue_is_answered_before_the_body() {
        let wire = start(8, 5_000);
        let mut s = TcpStream::connect(wire.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"POST /c HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut first = [0u8; 25];
        s.read_exact(&mut first).unwrap();
        assert_eq!(&first, b"HTTP/1.1 100 Continue\r\n\r\n");
        s.write_all(b"hi").unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        assert!(out.contains("\"len\":2"), "{out}");
    }

    #[test]
    fn idle_connections_do_not_delay_new_ones_and_the_limit_answers_503() {
        let wire = start(4, 30_000);
        // Three clients hold idle kept-alive connections.
        let idle: Vec<TcpStream> = (0..3)
            .map(|_| {
                let mut s = TcpStream::connect(wire.addr()).unwrap();
                s.write_all(b"GET /x HTTP/1.1\r\n\r\n").unwrap();
                let mut buf = [0u8; 12];
                s.read_exact(&mut buf).unwrap();
                s
            })
            .collect();
        let started = std::time::Instant::now();
        let out = exchange(&wire, b"GET /y HTTP/1.1\r\nConnection: close\r\n\r\n");
        assert!(out.contains("200 OK"), "{out}");
        assert!(started.elapsed() < Duration::from_secs(5));
        // A fourth held connection reaches the limit: the next is refused, not queued.
        let _fourth = TcpStream::connect(wire.addr()).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let out = exchange(&wire, b"GET /z HTTP/1.1\r\n\r\n");
        assert!(out.contains("503"), "{out}");
        drop(idle);
    }

    #[test]
    fn an_idle_connection_is_closed_after_the_timeout_and_stop_joins_everything() {
        let mut wire = start(8, 300);
        let mut s = TcpStream::connect(wire.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = Vec::new();
        // Nothing sent: the server closes after its idle time, without an answer.
        assert_eq!(s.read_to_end(&mut buf).unwrap(), 0);
        // A half-sent head stalls: 408.
        let out = exchange(&wire, b"GET / HTTP/1.1\r\nHost:");
        assert!(out.contains("408"), "{out}");
        let _held = TcpStream::connect(wire.addr()).unwrap();
        let started = std::time::Instant::now();
        wire.stop();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(TcpStream::connect(wire.addr()).is_err(), "still listening");
    }
}
