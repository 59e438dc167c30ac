//! A tiny TCP proxy in front of the server that sabotages one exchange: it
//! forwards a request and then loses the answer, or cuts the answer off
//! mid-body — the failures a client's retry and resume must survive.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone, Copy)]
pub enum Sabotage {
    /// Forward the request, wait for the server's answer to begin, then
    /// close the connection without passing a byte of it on.
    DropResponse,
    /// Pass the answer's head and this many body bytes on, then close.
    CutBodyAfter(usize),
}

pub struct Proxy {
    pub base: String,
    /// Every request head seen, in order.
    pub heads: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl Proxy {
    /// Sabotages the first request whose head starts with `matching`
    /// (e.g. `"POST /api/v1/generations"`); everything else passes.
    pub async fn start(upstream: SocketAddr, matching: &'static str, sabotage: Sabotage) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let used = Arc::new(AtomicBool::new(false));
        let h = heads.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (h, used) = (h.clone(), used.clone());
                tokio::spawn(async move {
                    let _ = handle(client, upstream, matching, sabotage, used, h).await;
                });
            }
        });
        Self { base, heads, task }
    }

    pub fn heads_starting(&self, prefix: &str) -> Vec<String> {
        self.heads
            .lock()
            .expect("heads")
            .iter()
            .filter(|h| h.starts_with(prefix))
            .cloned()
            .collect()
    }
}

async fn handle(
    mut client: TcpStream,
    upstream: SocketAddr,
    matching: &str,
    sabotage: Sabotage,
    used: Arc<AtomicBool>,
    heads: Arc<Mutex<Vec<String>>>,
) -> std::io::Result<()> {
    let mut server = TcpStream::connect(upstream).await?;
    let mut buf = Vec::new();
    let mut tmp = [0u8; 16 * 1024];
    let end = loop {
        let n = client.read(&mut tmp).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(p) = find(&buf, b"\r\n\r\n") {
            break p;
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    heads.lock().expect("heads").push(head.clone());
    server.write_all(&buf).await?;
    let victim = head.starts_with(matching) && !used.swap(true, Ordering::SeqCst);
    if !victim {
        tokio::io::copy_bidirectional(&mut client, &mut server).await?;
        return Ok(());
    }
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let upload = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut cr, &mut sw).await;
    });
    // Read the answer's head (the server has done the work by then).
    let mut answer = Vec::new();
    let head_end = loop {
        let n = sr.read(&mut tmp).await?;
        if n == 0 {
            break None;
        }
        answer.extend_from_slice(&tmp[..n]);
        if let Some(p) = find(&answer, b"\r\n\r\n") {
            break Some(p + 4);
        }
    };
    if let (Sabotage::CutBodyAfter(keep), Some(head_end)) = (sabotage, head_end) {
        while answer.len() < head_end + keep {
            let n = sr.read(&mut tmp).await?;
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&tmp[..n]);
        }
        let upto = answer.len().min(head_end + keep);
        cw.write_all(&answer[..upto]).await?;
        cw.flush().await?;
    }
    upload.abort();
    // Dropping both halves closes the caller's connection.
    Ok(())
}
