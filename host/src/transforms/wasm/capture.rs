//! A plugin's stdout or stderr, captured in a bounded buffer instead of inherited: what a guest
//! prints (a Rust panic message, a Python traceback) ends up in tailcar's log with the plugin's
//! name. Past the bound, output is counted and dropped; writes never fail, so a chatty plugin is
//! not turned into a failing one.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

#[derive(Debug, Default)]
struct Buffer {
    bytes: Vec<u8>,
    dropped: u64,
}

/// A bounded capture buffer; clones share it.
#[derive(Debug, Clone)]
pub struct Captured {
    capacity: usize,
    buffer: Arc<Mutex<Buffer>>,
}

impl Captured {
    pub fn new(capacity: usize) -> Self {
        Captured {
            capacity,
            buffer: Arc::default(),
        }
    }

    /// What was written since the last call (with a note of what did not fit).
    pub fn take(&self) -> Vec<u8> {
        let mut b = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = std::mem::take(&mut b.bytes);
        if b.dropped > 0 {
            out.extend_from_slice(format!("\n[{} more bytes not kept]", b.dropped).as_bytes());
            b.dropped = 0;
        }
        out
    }

    fn write(&self, data: &[u8]) {
        let mut b = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        let room = self.capacity.saturating_sub(b.bytes.len());
        let n = room.min(data.len());
        b.bytes.extend_from_slice(&data[..n]);
        b.dropped += (data.len() - n) as u64;
    }
}

#[async_trait::async_trait]
impl OutputStream for Captured {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        Captured::write(self, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

#[async_trait::async_trait]
impl Pollable for Captured {
    async fn ready(&mut self) {}
}

impl IsTerminal for Captured {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl tokio::io::AsyncWrite for Captured {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        Captured::write(&self, buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

impl StdoutStream for Captured {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_up_to_capacity_and_counts_the_rest() {
        let c = Captured::new(8);
        c.clone().write(b"hello ");
        c.write(b"world!");
        assert_eq!(c.take(), b"hello wo\n[4 more bytes not kept]");
        assert!(c.take().is_empty());
    }
}
