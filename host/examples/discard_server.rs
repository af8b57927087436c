//! A receiver for benchmarks: answers 200 to every request and counts the bytes it was sent.
//! `cargo run --release --example discard_server -- 127.0.0.1:18080`; prints the totals when
//! it receives SIGTERM or SIGINT. With `--elasticsearch` it answers a bulk request as
//! Elasticsearch does when every document was stored: `{"took":…,"errors":false,"items":[…]}`
//! with one `index` item per document (the body gunzipped when it was sent gzipped), so the
//! shipper reads an answer of the real size.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::service::service_fn;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let es = args.iter().any(|a| a == "--elasticsearch");
    let addr = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:18080".into());
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("binding");
    let (requests, bytes) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (r, b) = (Arc::clone(&requests), Arc::clone(&bytes));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (r, b) = (Arc::clone(&r), Arc::clone(&b));
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (r, b) = (Arc::clone(&r), Arc::clone(&b));
                    async move {
                        let gzipped = req
                            .headers()
                            .get("content-encoding")
                            .is_some_and(|v| v == "gzip");
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|c| c.to_bytes())
                            .unwrap_or_default();
                        r.fetch_add(1, Ordering::Relaxed);
                        b.fetch_add(body.len() as u64, Ordering::Relaxed);
                        let answer = if es {
                            Bytes::from(bulk_answer(&body, gzipped))
                        } else {
                            Bytes::from_static(b"{}")
                        };
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(answer)))
                    }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    println!(
        "requests={} bytes={}",
        requests.load(Ordering::Relaxed),
        bytes.load(Ordering::Relaxed)
    );
}

/// Elasticsearch's answer to a bulk request whose every document was stored: one `index` item
/// per action line (every other line of the NDJSON body).
fn bulk_answer(body: &[u8], gzipped: bool) -> Vec<u8> {
    use std::io::Read;
    let mut plain = Vec::new();
    let body = if gzipped {
        if flate2::read::MultiGzDecoder::new(body)
            .read_to_end(&mut plain)
            .is_err()
        {
            return br#"{"error":"bad gzip"}"#.to_vec();
        }
        &plain[..]
    } else {
        body
    };
    let docs = body.iter().filter(|&&b| b == b'\n').count() / 2;
    let mut out = String::with_capacity(40 + docs * 120);
    out.push_str(r#"{"took":3,"errors":false,"items":["#);
    for i in 0..docs {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            r#"{{"index":{{"_index":"logs-2026.12.05","_id":"{i:020}","_version":1,"result":"created","_shards":{{"total":2,"successful":1,"failed":0}},"_seq_no":{i},"_primary_term":1,"status":201}}}}"#
        ));
    }
    out.push_str("]}");
    out.into_bytes()
}
