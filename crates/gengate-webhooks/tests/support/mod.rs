//! A tiny raw-TCP HTTP/1.1 receiver on 127.0.0.1, so tests control every byte and every
//! timing of the answer (hang, redirect, a 50 MB stream) and can count connections.
//! Every loop here is bounded; the accept task is aborted when the `Receiver` drops.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Longest any receiver keeps a connection busy, so no test can hang forever.
const MAX_HOLD: Duration = Duration::from_secs(10);
const MAX_REQUEST_BYTES: usize = 1 << 20;

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the receiver does once it has read a request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Status code, extra header lines, body.
    Respond(u16, Vec<(String, String)>, Vec<u8>),
    /// Read the request, answer nothing.
    Hang,
    /// Send status and headers announcing a body of `len` bytes, then hang.
    HeadersThenHang(u16, usize),
    /// Status 200 and a `len`-byte body of `a`s, written in 64 KiB pieces.
    Stream(usize),
}

#[derive(Default)]
pub struct Stats {
    pub connections: AtomicUsize,
    pub requests: Mutex<Vec<Request>>,
    /// For `Reply::Stream`: bytes the receiver managed to write, and whether it stopped.
    pub streamed: AtomicUsize,
    pub stream_done: AtomicBool,
    pub stream_cut_off: AtomicBool,
}

pub struct Receiver {
    pub addr: SocketAddr,
    pub stats: Arc<Stats>,
    task: JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    pub async fn start(reply: Reply) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let stats = Arc::new(Stats::default());
        let task_stats = stats.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                task_stats.connections.fetch_add(1, Ordering::SeqCst);
                let stats = task_stats.clone();
                let reply = reply.clone();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(MAX_HOLD, serve(stream, reply, stats)).await;
                });
            }
        });
        Receiver { addr, stats, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.addr.port())
    }

    pub fn connections(&self) -> usize {
        self.stats.connections.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.stats.requests.lock().expect("not poisoned").clone()
    }
}

async fn serve(mut stream: TcpStream, reply: Reply, stats: Arc<Stats>) {
    let Some(request) = read_request(&mut stream).await else {
        return;
    };
    stats.requests.lock().expect("not poisoned").push(request);
    match reply {
        Reply::Respond(status, headers, body) => {
            let mut head = format!(
                "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n",
                body.len()
            );
            for (name, value) in headers {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str("\r\n");
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(&body).await;
            let _ = stream.shutdown().await;
        }
        Reply::Hang => tokio::time::sleep(MAX_HOLD).await,
        Reply::HeadersThenHang(status, len) => {
            let head = format!("HTTP/1.1 {status} X\r\ncontent-length: {len}\r\n\r\npartial");
            let _ = stream.write_all(head.as_bytes()).await;
            tokio::time::sleep(MAX_HOLD).await;
        }
        Reply::Stream(len) => {
            let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {len}\r\n\r\n");
            let chunk = vec![b'a'; 64 * 1024];
            let mut written = 0usize;
            let mut cut_off = stream.write_all(head.as_bytes()).await.is_err();
            while !cut_off && written < len {
                let n = chunk.len().min(len - written);
                match stream.write_all(&chunk[..n]).await {
                    Ok(()) => {
                        written += n;
                        stats.streamed.store(written, Ordering::SeqCst);
                    }
                    Err(_) => cut_off = true,
                }
            }
            stats.stream_cut_off.store(cut_off, Ordering::SeqCst);
            stats.stream_done.store(true, Ordering::SeqCst);
        }
    }
}

async fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut piece = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_REQUEST_BYTES {
            return None;
        }
        let n = stream.read(&mut piece).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&piece[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let target = request_line.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len && body.len() <= MAX_REQUEST_BYTES {
        let n = stream.read(&mut piece).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&piece[..n]);
    }
    Some(Request {
        method,
        target,
        headers,
        body,
    })
}

/// Peak resident set size of this process, from /proc (Linux).
pub fn peak_rss_bytes() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
