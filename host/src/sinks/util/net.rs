//! Socket connections for sinks that are not HTTP: TCP (optionally TLS) with reconnects for
//! `tcp`, `syslog` and `kafka`, and UDP datagrams for `syslog`.
//!
//! [`StreamWriter`] holds one connection and writes whole requests to it. Before each write it
//! checks whether the server has closed the connection (these protocols are one-way, so a
//! readable socket means the peer is gone); if so, or if a write fails, the connection is
//! dropped and the next attempt reconnects. A request counts as written when it is flushed to
//! the kernel: a server that dies after that and before reading it loses it (see the sinks'
//! documentation), which is the limit of any protocol without acknowledgements.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UdpSocket};
use tokio_rustls::TlsConnector;

use super::http::{TlsConfig, tls_client_config};

/// Checks a `host:port` address; the error says what is wrong with it.
pub fn check_address(address: &str) -> Result<()> {
    let Some((host, port)) = address.rsplit_once(':') else {
        bail!("`{address}` is not host:port");
    };
    if host.is_empty() {
        bail!("`{address}` has no host");
    }
    port.parse::<u16>()
        .map_err(|_| anyhow::anyhow!("`{address}` has no valid port"))?;
    Ok(())
}

/// The host part of `host:port`, without IPv6 brackets.
fn host_of(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// Opens connections to one server.
#[derive(Clone)]
pub struct Connector {
    address: String,
    tls: Option<(TlsConnector, rustls_pki_types::ServerName<'static>)>,
    timeout: Duration,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("address", &self.address)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Connector {
    /// A connector to `address` (`host:port`), over TLS when `tls` is given.
    pub fn new(address: &str, tls: Option<&TlsConfig>, timeout: Duration) -> Result<Self> {
        check_address(address)?;
        let tls = match tls {
            None => None,
            Some(t) => {
                let config = tls_client_config(t)?;
                let name = rustls_pki_types::ServerName::try_from(host_of(address).to_string())
                    .with_context(|| {
                        format!("`{}` is not a valid TLS server name", host_of(address))
                    })?;
                Some((TlsConnector::from(Arc::new(config)), name))
            }
        };
        Ok(Connector {
            address: address.to_string(),
            tls,
            timeout,
        })
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// Connects (and shakes hands, for TLS) within the timeout, with `TCP_NODELAY` set: each
    /// request is written whole, so Nagle's algorithm could only delay it.
    pub async fn connect(&self) -> Result<Conn> {
        let work = async {
            let tcp = TcpStream::connect(&self.address)
                .await
                .with_context(|| format!("connecting to {}", self.address))?;
            tcp.set_nodelay(true)
                .with_context(|| format!("setting TCP_NODELAY on {}", self.address))?;
            Ok::<_, anyhow::Error>(match &self.tls {
                None => Conn::Plain(tcp),
                Some((connector, name)) => Conn::Tls(Box::new(
                    connector
                        .connect(name.clone(), tcp)
                        .await
                        .with_context(|| format!("TLS handshake with {}", self.address))?,
                )),
            })
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| anyhow::anyhow!("connecting to {}: timed out", self.address))?
    }
}

/// One connection, plain or TLS.
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => s.get_ref().0,
        }
    }

    /// Whether the server closed the connection or sent something, which one-way protocols
    /// only do when they are going away (a TLS close-notify, an error line). Does not block.
    pub fn peer_gone(&self) -> bool {
        let mut probe = [0u8; 1];
        match self.tcp().try_read(&mut probe) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            Ok(_) | Err(_) => true,
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// One connection that whole requests are written to, re-opened when it breaks.
pub struct StreamWriter {
    connector: Connector,
    sink: Arc<str>,
    conn: tokio::sync::Mutex<Option<Conn>>,
}

impl StreamWriter {
    pub fn new(sink: Arc<str>, connector: Connector) -> Self {
        StreamWriter {
            connector,
            sink,
            conn: tokio::sync::Mutex::new(None),
        }
    }

    /// Writes `payload` whole and flushes it, connecting first if needed. On an error the
    /// connection is dropped, so the retry starts on a fresh one.
    pub async fn write(&self, payload: &[u8]) -> Result<()> {
        let mut conn = self.conn.lock().await;
        if conn.as_ref().is_some_and(Conn::peer_gone) {
            tracing::info!(sink = %self.sink, address = %self.connector.address, "the server closed the connection; reconnecting");
            *conn = None;
        }
        if conn.is_none() {
            *conn = Some(self.connector.connect().await?);
            tracing::info!(sink = %self.sink, address = %self.connector.address, "connected");
        }
        let c = conn.as_mut().expect("connected above");
        let written = tokio::time::timeout(self.connector.timeout, async {
            c.write_all(payload).await?;
            c.flush().await
        })
        .await;
        let result = match written {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => Err(anyhow::Error::new(e)),
            Err(_) => Err(anyhow::anyhow!("timed out")),
        };
        *conn = None;
        result.with_context(|| format!("writing to {}", self.connector.address))
    }
}

/// Datagrams to one server, from a socket opened on first use.
pub struct DatagramSender {
    address: String,
    socket: tokio::sync::Mutex<Option<UdpSocket>>,
}

impl DatagramSender {
    pub fn new(address: &str) -> Result<Self> {
        check_address(address)?;
        Ok(DatagramSender {
            address: address.to_string(),
            socket: tokio::sync::Mutex::new(None),
        })
    }

    /// Sends each of `datagrams` in order. An error (such as the port-unreachable answer to an
    /// earlier datagram) drops the socket, so the retry resolves the address again.
    pub async fn send<'a>(&self, datagrams: impl Iterator<Item = &'a [u8]>) -> Result<()> {
        let mut socket = self.socket.lock().await;
        if socket.is_none() {
            let target = tokio::net::lookup_host(&self.address)
                .await
                .with_context(|| format!("resolving {}", self.address))?
                .next()
                .with_context(|| format!("{} resolves to no address", self.address))?;
            let local: std::net::SocketAddr = if target.is_ipv4() {
                "0.0.0.0:0".parse()?
            } else {
                "[::]:0".parse()?
            };
            let s = UdpSocket::bind(local)
                .await
                .context("opening a UDP socket")?;
            s.connect(target)
                .await
                .with_context(|| format!("connecting a UDP socket to {target}"))?;
            *socket = Some(s);
        }
        let s = socket.as_ref().expect("opened above");
        for d in datagrams {
            if let Err(e) = s.send(d).await {
                *socket = None;
                return Err(e).with_context(|| format!("sending to {}", self.address));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked() {
        assert!(check_address("logstash:5000").is_ok());
        assert!(check_address("[::1]:514").is_ok());
        assert!(
            check_address("logstash")
                .unwrap_err()
                .to_string()
                .contains("not host:port")
        );
        assert!(
            check_address("logstash:99999")
                .unwrap_err()
                .to_string()
                .contains("no valid port")
        );
        assert_eq!(host_of("[::1]:514"), "::1");
    }

    #[tokio::test]
    async fn reconnects_after_the_server_closes() {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let writer = StreamWriter::new(
            "t".into(),
            Connector::new(&addr, None, Duration::from_secs(5)).unwrap(),
        );
        writer.write(b"one\n").await.unwrap();
        let (mut first, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4];
        first.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"one\n");
        drop(first); // The server goes away.
        tokio::time::sleep(Duration::from_millis(50)).await;
        writer.write(b"two\n").await.unwrap();
        let (mut second, _) = listener.accept().await.unwrap();
        drop(writer);
        let mut got = Vec::new();
        second.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"two\n", "the second write went to the new connection");
    }
}
