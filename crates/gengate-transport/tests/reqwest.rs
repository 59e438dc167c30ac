//! The reqwest transport against a raw TCP server that answers exactly what each test
//! needs: declared and undeclared lengths, long error pages, silence.

use std::time::Duration;

use gengate_transport::{
    MAX_ERROR_BODY_BYTES, Method, Request, ReqwestTransport, StatusCode, Transport, TransportError,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves one connection with `answer` (written as is) and returns the request it read.
async fn serve_once(answer: Vec<u8>) -> (url::Url, tokio::task::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.expect("accept");
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        // Read the head, then whatever body its Content-Length announces.
        loop {
            let n = sock.read(&mut buf).await.expect("read");
            seen.extend_from_slice(&buf[..n]);
            if let Some(end) = find(&seen, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&seen[..end]).to_lowercase();
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                while seen.len() < end + 4 + len {
                    let n = sock.read(&mut buf).await.expect("read body");
                    seen.extend_from_slice(&buf[..n]);
                }
                break;
            }
            if n == 0 {
                break;
            }
        }
        if !answer.is_empty() {
            let _ = sock.write_all(&answer).await;
        } else {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        String::from_utf8_lossy(&seen).into_owned()
    });
    (
        url::Url::parse(&format!("http://{addr}/v1/x")).expect("url"),
        task,
    )
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn answer(status: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\nconnection: close\r\n{headers}\r\n").into_bytes();
    out.extend_from_slice(body);
    out
}

fn transport() -> ReqwestTransport {
    ReqwestTransport::api().expect("client")
}

#[tokio::test]
async fn sends_the_bearer_and_json_body_and_reads_the_answer() {
    let (url, seen) = serve_once(answer(
        "200 OK",
        "content-length: 11\r\n",
        b"{\"code\":0}\n",
    ))
    .await;
    let got = transport()
        .send(Request {
            method: Method::POST,
            url,
            bearer: Some("tok".into()),
            json: Some(bytes::Bytes::from_static(b"{\"a\":1}")),
            timeout: Duration::from_secs(5),
            max_body: 1024,
        })
        .await
        .expect("answer");
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(&got.body[..], b"{\"code\":0}\n");
    let req = seen.await.expect("server");
    let lower = req.to_lowercase();
    assert!(req.starts_with("POST /v1/x HTTP/1.1"), "{req}");
    assert!(lower.contains("authorization: bearer tok"), "{req}");
    assert!(lower.contains("content-type: application/json"), "{req}");
    assert!(req.ends_with("{\"a\":1}"), "{req}");
}

#[tokio::test]
async fn a_declared_length_over_the_cap_is_refused() {
    let (url, _seen) = serve_once(answer("200 OK", "content-length: 100\r\n", &[b'x'; 100])).await;
    let err = transport()
        .send(Request::get(url, Duration::from_secs(5), 99))
        .await
        .expect_err("too large");
    assert_eq!(err, TransportError::TooLarge(99));
}

#[tokio::test]
async fn an_undeclared_length_over_the_cap_is_caught_while_streaming() {
    // Chunked: two chunks of 60 bytes, no Content-Length.
    let mut body = Vec::new();
    for _ in 0..2 {
        body.extend_from_slice(b"3c\r\n");
        body.extend_from_slice(&[b'y'; 60]);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    let (url, _seen) = serve_once(answer("200 OK", "transfer-encoding: chunked\r\n", &body)).await;
    let t = transport();
    let err = t
        .send(Request::get(url, Duration::from_secs(5), 100))
        .await
        .expect_err("too large");
    assert_eq!(err, TransportError::TooLarge(100));
}

#[tokio::test]
async fn a_long_error_page_is_cut_not_refused() {
    let long = vec![b'e'; (MAX_ERROR_BODY_BYTES as usize) + 5000];
    let (url, _seen) = serve_once(answer(
        "502 Bad Gateway",
        &format!("content-length: {}\r\n", long.len()),
        &long,
    ))
    .await;
    let got = transport()
        .send(Request::get(url, Duration::from_secs(5), 10))
        .await
        .expect("an answer");
    assert_eq!(got.status, StatusCode::BAD_GATEWAY);
    assert_eq!(got.body.len() as u64, MAX_ERROR_BODY_BYTES);
}

#[tokio::test]
async fn silence_is_a_timeout_and_no_listener_is_a_network_error() {
    let (url, _seen) = serve_once(Vec::new()).await;
    let err = transport()
        .send(Request::get(url, Duration::from_millis(300), 10))
        .await
        .expect_err("timeout");
    assert_eq!(err, TransportError::Timeout);

    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = closed.local_addr().expect("addr");
    drop(closed);
    let err = transport()
        .send(Request::get(
            url::Url::parse(&format!("http://{addr}/")).expect("url"),
            Duration::from_secs(5),
            10,
        ))
        .await
        .expect_err("refused");
    assert!(
        matches!(err, TransportError::Network(ref m) if !m.is_empty()),
        "{err:?}"
    );
}
