//! A small Kafka producer client: what the `kafka` sink needs and nothing more, on the
//! message and record-batch encodings of the `kafka-protocol` crate.
//!
//! * [`BrokerConn`]: one connection to one broker: connect (TCP with `TCP_NODELAY`, optional
//!   TLS), negotiate API versions, authenticate (SASL PLAIN or SCRAM), then requests one at a
//!   time, each written in a single write (length prefix and body together) so that Nagle's
//!   algorithm cannot hold half of it back, and its response read whole. Any error drops the
//!   connection; the next request reconnects.
//! * [`Cluster`]: the bootstrap list, connections by broker id, and topic metadata (partition
//!   leaders), refreshed on demand.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ParseResponseErrorCode;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, BrokerId, MetadataRequest, RequestHeader, ResponseHeader,
    SaslAuthenticateRequest, SaslHandshakeRequest, TopicName,
    metadata_request::MetadataRequestTopic,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::scram::{Hash, Scram};
use crate::sinks::util::net::{Conn, Connector};

/// SASL authentication.
#[derive(Debug, Clone)]
pub enum Sasl {
    Plain {
        user: String,
        password: String,
    },
    Scram {
        hash: Hash,
        user: String,
        password: String,
    },
}

/// What every connection needs.
#[derive(Debug, Clone)]
pub struct ConnConfig {
    pub client_id: String,
    pub tls: Option<crate::sinks::util::http::TlsConfig>,
    pub sasl: Option<Sasl>,
    pub timeout: Duration,
}

/// One connection to one broker.
pub struct BrokerConn {
    address: String,
    config: Arc<ConnConfig>,
    conn: Option<Conn>,
    versions: HashMap<i16, (i16, i16)>,
    correlation: i32,
}

impl BrokerConn {
    pub fn new(address: String, config: Arc<ConnConfig>) -> Self {
        BrokerConn {
            address,
            config,
            conn: None,
            versions: HashMap::new(),
            correlation: 0,
        }
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// The highest version of `key` both sides speak, within `ours`.
    pub fn version(&self, key: ApiKey, ours: std::ops::RangeInclusive<i16>) -> Result<i16> {
        let (min, max) =
            self.versions.get(&(key as i16)).copied().with_context(|| {
                format!("the broker at {} does not support {key:?}", self.address)
            })?;
        let v = (*ours.end()).min(max);
        if v < *ours.start() || v < min {
            bail!(
                "the broker at {} speaks {key:?} versions {min}..={max}, tailcar {}..={}",
                self.address,
                ours.start(),
                ours.end()
            );
        }
        Ok(v)
    }

    /// Connects if needed, then [`version`](Self::version).
    pub async fn request_version(
        &mut self,
        key: ApiKey,
        ours: std::ops::RangeInclusive<i16>,
    ) -> Result<i16> {
        self.ensure_connected().await?;
        self.version(key, ours)
    }

    async fn ensure_connected(&mut self) -> Result<()> {
        if self.conn.as_ref().is_some_and(Conn::peer_gone) {
            self.conn = None;
        }
        if self.conn.is_some() {
            return Ok(());
        }
        let connector =
            Connector::new(&self.address, self.config.tls.as_ref(), self.config.timeout)?;
        self.conn = Some(connector.connect().await?);
        // ApiVersions v3 is answered by every broker since Kafka 2.4 (a v0 header either way).
        let response = self
            .exchange(
                ApiVersionsRequest::default()
                    .with_client_software_name(StrBytes::from_static_str("tailcar"))
                    .with_client_software_version(StrBytes::from_static_str(env!(
                        "CARGO_PKG_VERSION"
                    ))),
                3,
            )
            .await
            .context("asking the broker's API versions")?;
        if let Some(e) = response.error_code.err() {
            bail!("the broker refused ApiVersions: {e}");
        }
        self.versions = response
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        if let Some(sasl) = self.config.sasl.clone() {
            self.authenticate(&sasl).await?;
        }
        Ok(())
    }

    async fn authenticate(&mut self, sasl: &Sasl) -> Result<()> {
        let mechanism = match sasl {
            Sasl::Plain { .. } => "PLAIN",
            Sasl::Scram {
                hash: Hash::Sha256, ..
            } => "SCRAM-SHA-256",
            Sasl::Scram {
                hash: Hash::Sha512, ..
            } => "SCRAM-SHA-512",
        };
        let v = self.version(ApiKey::SaslHandshake, 1..=1)?;
        let hs = self
            .exchange(
                SaslHandshakeRequest::default()
                    .with_mechanism(StrBytes::from_static_str(mechanism)),
                v,
            )
            .await?;
        if let Some(e) = hs.error_code.err() {
            let offered: Vec<&str> = hs.mechanisms.iter().map(|m| m.as_str()).collect();
            bail!(
                "SASL {mechanism}: {e} (the broker offers {})",
                offered.join(", ")
            );
        }
        match sasl {
            Sasl::Plain { user, password } => {
                self.sasl_step(format!("\0{user}\0{password}").into_bytes(), mechanism)
                    .await?;
            }
            Sasl::Scram {
                hash,
                user,
                password,
            } => {
                let mut scram = Scram::new(*hash, user, password)?;
                let server_first = self.sasl_step(scram.client_first(), mechanism).await?;
                let last = scram.client_final(&server_first)?;
                let server_final = self.sasl_step(last, mechanism).await?;
                scram
                    .verify(&server_final)
                    .with_context(|| format!("SASL {mechanism}"))?;
            }
        }
        Ok(())
    }

    async fn sasl_step(&mut self, bytes: Vec<u8>, mechanism: &str) -> Result<Bytes> {
        let v = self.version(ApiKey::SaslAuthenticate, 0..=2)?;
        let r = self
            .exchange(
                SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(bytes)),
                v,
            )
            .await?;
        if let Some(e) = r.error_code.err() {
            let msg = r.error_message.as_ref().map(|m| m.as_str()).unwrap_or("");
            bail!("SASL {mechanism}: {e} {msg}");
        }
        Ok(r.auth_bytes)
    }

    /// Sends `request` at `version` and reads its response, connecting first if needed.
    pub async fn request<R: Request>(&mut self, request: R, version: i16) -> Result<R::Response> {
        self.ensure_connected().await?;
        self.exchange(request, version).await
    }

    /// Sends `request` at `version` without waiting for an answer (produce with `acks: none`).
    pub async fn send_only<R: Request>(&mut self, request: R, version: i16) -> Result<()> {
        self.ensure_connected().await?;
        let frame = self.frame(&request, version)?;
        let result = tokio::time::timeout(self.config.timeout, async {
            let conn = self.conn.as_mut().expect("connected");
            conn.write_all(&frame).await?;
            conn.flush().await
        })
        .await;
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.conn = None;
                Err(e).with_context(|| format!("writing to {}", self.address))
            }
            Err(_) => {
                self.conn = None;
                bail!("writing to {}: timed out", self.address)
            }
        }
    }

    fn frame<R: Request>(&mut self, request: &R, version: i16) -> Result<BytesMut> {
        self.correlation = self.correlation.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_string(self.config.client_id.clone())));
        let mut buf = BytesMut::with_capacity(64);
        buf.put_i32(0); // The length, filled in below.
        header.encode(&mut buf, R::header_version(version))?;
        request.encode(&mut buf, version)?;
        let len = i32::try_from(buf.len() - 4).context("request too large")?;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        Ok(buf)
    }

    async fn exchange<R: Request>(&mut self, request: R, version: i16) -> Result<R::Response> {
        let frame = self.frame(&request, version)?;
        let correlation = self.correlation;
        let address = self.address.clone();
        let conn = self.conn.as_mut().context("not connected")?;
        let result = tokio::time::timeout(self.config.timeout, async {
            conn.write_all(&frame).await?;
            conn.flush().await?;
            let len = conn.read_i32().await?;
            if !(0..=256 * 1024 * 1024).contains(&len) {
                return Err(std::io::Error::other(format!("bad response length {len}")));
            }
            let mut body = BytesMut::zeroed(len as usize);
            conn.read_exact(&mut body).await?;
            Ok(body)
        })
        .await;
        let mut body = match result {
            Ok(Ok(body)) => body.freeze(),
            Ok(Err(e)) => {
                self.conn = None;
                return Err(e).with_context(|| format!("talking to {address}"));
            }
            Err(_) => {
                self.conn = None;
                bail!(
                    "talking to {address}: no answer within {:?}",
                    self.config.timeout
                );
            }
        };
        let decoded = (|| {
            let header = ResponseHeader::decode(&mut body, R::Response::header_version(version))?;
            if header.correlation_id != correlation {
                bail!(
                    "answer to request {} where {correlation} was expected",
                    header.correlation_id
                );
            }
            R::Response::decode(&mut body, version)
        })();
        if decoded.is_err() {
            self.conn = None;
        }
        decoded.with_context(|| format!("reading {:?} from {address}", ApiKey::try_from(R::KEY)))
    }
}

/// One topic's partitions: each one's leader, if it has one now.
#[derive(Debug, Clone, Default)]
pub struct TopicMeta {
    pub leaders: Vec<Option<i32>>,
}

/// The brokers and what they lead.
pub struct Cluster {
    bootstrap: Vec<String>,
    config: Arc<ConnConfig>,
    /// Connections by broker id; each used by one request at a time.
    pub brokers: HashMap<i32, Arc<tokio::sync::Mutex<BrokerConn>>>,
    addresses: HashMap<i32, String>,
    pub topics: HashMap<String, TopicMeta>,
    /// The connection metadata is asked on (a broker, or a bootstrap server).
    meta_conn: Option<BrokerConn>,
    next_bootstrap: usize,
}

impl Cluster {
    pub fn new(bootstrap: Vec<String>, config: ConnConfig) -> Self {
        Cluster {
            bootstrap,
            config: Arc::new(config),
            brokers: HashMap::new(),
            addresses: HashMap::new(),
            topics: HashMap::new(),
            meta_conn: None,
            next_bootstrap: 0,
        }
    }

    /// Asks for `topics`' metadata and updates the leaders and broker addresses. Tries the
    /// bootstrap servers in turn.
    pub async fn refresh(&mut self, topics: &[String]) -> Result<()> {
        let mut last_error = None;
        for _ in 0..self.bootstrap.len().max(1) {
            if self.meta_conn.is_none() {
                let address = self.bootstrap[self.next_bootstrap % self.bootstrap.len()].clone();
                self.next_bootstrap += 1;
                self.meta_conn = Some(BrokerConn::new(address, Arc::clone(&self.config)));
            }
            let conn = self.meta_conn.as_mut().expect("set above");
            match Self::metadata(conn, topics).await {
                Ok(response) => {
                    self.apply(response);
                    return Ok(());
                }
                Err(e) => {
                    tracing::debug!(address = conn.address(), error = %format!("{e:#}"), "metadata request failed");
                    self.meta_conn = None;
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("no bootstrap servers")))
    }

    async fn metadata(
        conn: &mut BrokerConn,
        topics: &[String],
    ) -> Result<kafka_protocol::messages::MetadataResponse> {
        conn.ensure_connected().await?;
        let v = conn.version(ApiKey::Metadata, 1..=9)?;
        let request = MetadataRequest::default()
            .with_topics(Some(
                topics
                    .iter()
                    .map(|t| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
                    })
                    .collect(),
            ))
            .with_allow_auto_topic_creation(false);
        conn.exchange(request, v).await
    }

    fn apply(&mut self, response: kafka_protocol::messages::MetadataResponse) {
        for b in &response.brokers {
            let address = format!("{}:{}", b.host.as_str(), b.port);
            let id = b.node_id.0;
            if self.addresses.get(&id) != Some(&address) {
                self.addresses.insert(id, address.clone());
                self.brokers.insert(
                    id,
                    Arc::new(tokio::sync::Mutex::new(BrokerConn::new(
                        address,
                        Arc::clone(&self.config),
                    ))),
                );
            }
        }
        for t in response.topics {
            let Some(name) = t.name else { continue };
            if t.error_code.err().is_some() {
                self.topics.remove(name.0.as_str());
                continue;
            }
            let count = t
                .partitions
                .iter()
                .map(|p| p.partition_index + 1)
                .max()
                .unwrap_or(0) as usize;
            let mut leaders = vec![None; count];
            for p in &t.partitions {
                let leader: BrokerId = p.leader_id;
                leaders[p.partition_index as usize] = (leader.0 >= 0).then_some(leader.0);
            }
            self.topics
                .insert(name.0.as_str().to_string(), TopicMeta { leaders });
        }
    }

    /// Any broker connection, for requests that any broker answers (InitProducerId).
    pub fn any_broker(&self) -> Option<Arc<tokio::sync::Mutex<BrokerConn>>> {
        let mut ids: Vec<_> = self.brokers.keys().copied().collect();
        ids.sort_unstable();
        ids.first().and_then(|id| self.brokers.get(id).cloned())
    }
}
