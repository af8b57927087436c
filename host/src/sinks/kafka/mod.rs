//! The `kafka` sink: produces records to Kafka (or any broker that speaks its protocol), on the
//! shared delivery core (batching, retries, acknowledgements, dead-letter).
//!
//! Each record becomes one Kafka record: the value is the record as JSON (`format: json`, the
//! default) or its raw line; the topic, key and headers are templates (`{stream}`, `{file}`,
//! `{FIELD}`); the timestamp is the record's event time, or when it was read. Records with a key
//! go to the partition Kafka's Java client would pick (murmur2 of the key), so one pod's lines
//! stay in order in one partition; records without a key of one request go to one partition,
//! chosen round-robin per request.
//!
//! A request's records are grouped by leader broker into one `Produce` request per broker, one
//! record batch per partition (compressed with `compression`). With `acks: all` (the default)
//! a record is acknowledged to the checkpoint store when the partition leader and its in-sync
//! replicas have it; with `acks: leader` when the leader has it; with `acks: none` when it is
//! written to the socket. Partitions that fail with a retriable error (leader moved, broker
//! down) are sent again with the same record batch after a metadata refresh; the others of the
//! request are not sent twice. With `idempotent: true` (the default, with `acks: all`) each
//! batch carries the producer id and sequence numbers the broker gave out, so a batch sent again
//! after a lost answer is stored once. Duplicates remain possible when the producer id itself
//! is lost (tailcar restarted with records in flight, or the broker forgot the producer).

mod client;
mod scram;

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result};
use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::error::{ParseResponseErrorCode, ResponseError};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, InitProducerIdRequest, ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression as KCompression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::util::batcher::Request;
use super::util::delivery::RemoteOptions;
use super::util::delivery::{self, Transport, remote_sink_config};
use super::util::encode::{Format, encode_range};
use super::util::http::{Secret, TlsConfig};
use super::util::retry::Outcome;
use super::util::template::Template;
use super::{SinkBatch, SinkContext, SinkExit};
use crate::units::{KeyedResult, SettingError};
use client::{BrokerConn, Cluster, ConnConfig, Sasl};

/// Record batch compression.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KafkaCompression {
    #[default]
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

/// When the broker answers a produce request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Acks {
    /// When every in-sync replica has the records.
    #[default]
    All,
    /// When the partition leader has them.
    Leader,
    /// Never: the records count as delivered once written to the socket.
    None,
}

/// SASL mechanisms, spelled as Kafka spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Mechanism {
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

/// `sasl: { mechanism, user, password | password_file }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaslConfig {
    pub mechanism: Mechanism,
    pub user: String,
    pub password: Option<Secret>,
    pub password_file: Option<std::path::PathBuf>,
}

fn json() -> Format {
    Format::Json
}

fn client_id() -> String {
    "tailcar".into()
}

fn yes() -> bool {
    true
}

/// Requests go one at a time, so that sequence numbers and per-partition order hold.
fn max_in_flight() -> usize {
    1
}

remote_sink_config! {
    pub struct KafkaConfig {
        /// `host:port` of one or more brokers to ask for the cluster's metadata.
        pub bootstrap_servers: Vec<String>,
        /// The topic, a template (`logs-{stream}`); the topic must exist.
        pub topic: Template,
        /// The record key, a template (`{pod}`); none by default.
        pub key: Option<Template>,
        /// Record headers: name → template.
        #[serde(default)]
        pub headers: IndexMap<String, Template>,
        /// The record value: `json` (default) or `raw`.
        #[serde(default = "json")]
        pub format: Format,
        /// `none` (default), `gzip`, `snappy`, `lz4` or `zstd`.
        #[serde(default)]
        pub compression: KafkaCompression,
        /// `all` (default), `leader` or `none`.
        #[serde(default)]
        pub acks: Acks,
        /// Producer ids and sequence numbers, so retried batches are stored once
        /// (with `acks: all`; default true).
        #[serde(default = "yes")]
        pub idempotent: bool,
        /// The client id the brokers see.
        #[serde(default = "client_id")]
        pub client_id: String,
        /// Speak TLS (give `{}` for the defaults: system roots, certificates checked).
        pub tls: Option<TlsConfig>,
        /// SASL authentication.
        pub sasl: Option<SaslConfig>,
    }
    max_in_flight_default = "max_in_flight"
}

impl KafkaConfig {
    /// Checks the settings; errors are keyed relative to the sink.
    pub fn check(&self) -> Result<(), SettingError> {
        if self.bootstrap_servers.is_empty() {
            return Err(SettingError::new(
                "bootstrap_servers",
                "give at least one host:port",
            ));
        }
        for (i, b) in self.bootstrap_servers.iter().enumerate() {
            super::util::net::check_address(b).key(&format!("bootstrap_servers[{i}]"))?;
        }
        if self.topic.as_text() == Some("") {
            return Err(SettingError::new("topic", "must not be empty"));
        }
        if let Some(tls) = &self.tls {
            super::util::http::tls_client_config(tls).map_err(|e| e.under("tls"))?;
        }
        self.sasl().map_err(|e| e.under("sasl"))?;
        Ok(())
    }

    /// The SASL settings with the password read; errors are keyed relative to `sasl`.
    fn sasl(&self) -> Result<Option<Sasl>, SettingError> {
        let Some(s) = &self.sasl else { return Ok(None) };
        let password = super::util::http::secret(&s.password, &s.password_file, "password")?
            .ok_or_else(|| SettingError::new("password", "give `password` or `password_file`"))?;
        let user = s.user.clone();
        Ok(Some(match s.mechanism {
            Mechanism::Plain => Sasl::Plain { user, password },
            Mechanism::ScramSha256 => Sasl::Scram {
                hash: scram::Hash::Sha256,
                user,
                password,
            },
            Mechanism::ScramSha512 => Sasl::Scram {
                hash: scram::Hash::Sha512,
                user,
                password,
            },
        }))
    }
}

impl super::Sink for KafkaConfig {
    fn kind(&self) -> &'static str {
        "kafka"
    }

    fn spawn(
        &self,
        name: Arc<str>,
        input: mpsc::Receiver<SinkBatch>,
        exit: mpsc::UnboundedSender<SinkExit>,
        ctx: &SinkContext,
    ) -> Result<()> {
        let config = ConnConfig {
            client_id: self.client_id.clone(),
            tls: self.tls.clone(),
            sasl: self.sasl()?,
            timeout: self.request_timeout,
        };
        let transport = KafkaTransport {
            name: Arc::clone(&name),
            cluster: tokio::sync::Mutex::new(Cluster::new(self.bootstrap_servers.clone(), config)),
            producer: tokio::sync::Mutex::new(Producer {
                enabled: self.idempotent && self.acks == Acks::All,
                id: None,
                sequences: HashMap::new(),
            }),
            topic: self.topic.clone(),
            key: self.key.clone(),
            headers: self
                .headers
                .iter()
                .map(|(k, v)| (StrBytes::from_string(k.clone()), v.clone()))
                .collect(),
            format: self.format,
            compression: match self.compression {
                KafkaCompression::None => KCompression::None,
                KafkaCompression::Gzip => KCompression::Gzip,
                KafkaCompression::Snappy => KCompression::Snappy,
                KafkaCompression::Lz4 => KCompression::Lz4,
                KafkaCompression::Zstd => KCompression::Zstd,
            },
            acks: match self.acks {
                Acks::All => -1,
                Acks::Leader => 1,
                Acks::None => 0,
            },
            timeout_ms: self.request_timeout.as_millis().min(i32::MAX as u128) as i32,
            round_robin: AtomicUsize::new(0),
        };
        delivery::start(name, transport, self.options(), input, exit, ctx)
    }

    fn check_settings(&self) -> Result<(), SettingError> {
        self.check()
    }

    fn remote_options(&self) -> Option<RemoteOptions<'_>> {
        Some(self.options())
    }

    fn templates(&self) -> Vec<(String, Template)> {
        let mut out = vec![("topic".to_string(), self.topic.clone())];
        out.extend(self.key.clone().map(|k| ("key".into(), k)));
        out.extend(
            self.headers
                .iter()
                .map(|(k, t)| (format!("headers.{k}"), t.clone())),
        );
        out
    }

    fn describe(&self) -> String {
        format!(
            "kafka {} acks {:?}, compression {:?}",
            self.bootstrap_servers.join(","),
            self.acks,
            self.compression
        )
        .to_lowercase()
    }
}

/// The idempotent producer's identity and next sequence number per partition.
struct Producer {
    enabled: bool,
    id: Option<(i64, i16)>,
    sequences: HashMap<(String, i32), i32>,
}

struct KafkaTransport {
    name: Arc<str>,
    cluster: tokio::sync::Mutex<Cluster>,
    producer: tokio::sync::Mutex<Producer>,
    topic: Template,
    key: Option<Template>,
    headers: Vec<(StrBytes, Template)>,
    format: Format,
    compression: KCompression,
    acks: i16,
    timeout_ms: i32,
    round_robin: AtomicUsize,
}

/// One record, as spans of the payload's bytes.
struct Prepared {
    topic: usize,
    key: Option<Range<usize>>,
    value: Range<usize>,
    headers: Vec<Range<usize>>,
    timestamp_ms: i64,
}

/// What one partition's records became.
#[derive(Debug, Clone, PartialEq)]
enum Status {
    Pending,
    Delivered,
    Failed(String),
}

/// One partition's share of a request, kept across attempts.
struct PartitionBatch {
    records: Vec<usize>,
    status: Status,
    /// (producer id, epoch, base sequence) given to this batch.
    sequence: Option<(i64, i16, i32)>,
}

/// A request's records ready for Kafka, with what earlier attempts achieved.
struct Payload {
    data: Bytes,
    records: Vec<Prepared>,
    topics: Vec<String>,
    state: std::sync::Mutex<Option<HashMap<(usize, i32), PartitionBatch>>>,
}

impl Transport for KafkaTransport {
    type Payload = Payload;

    fn encode(&self, request: &Request) -> Payload {
        let mut data = Vec::with_capacity(request.bytes + request.records * 64);
        let mut records = Vec::with_capacity(request.records);
        let mut topics: Vec<String> = Vec::new();
        let mut text = String::new();
        for part in &request.parts {
            let batch = &part.batch;
            for i in part.range.clone() {
                text.clear();
                self.topic.render_into(batch, i, &mut text);
                let topic = match topics.iter().position(|t| *t == text) {
                    Some(t) => t,
                    None => {
                        topics.push(text.clone());
                        topics.len() - 1
                    }
                };
                let mut span = |data: &mut Vec<u8>, t: &Template| {
                    let start = data.len();
                    text.clear();
                    t.render_into(batch, i, &mut text);
                    data.extend_from_slice(text.as_bytes());
                    start..data.len()
                };
                let key = self.key.as_ref().map(|k| span(&mut data, k));
                let headers = self
                    .headers
                    .iter()
                    .map(|(_, t)| span(&mut data, t))
                    .collect();
                let start = data.len();
                encode_range(batch, i..i + 1, self.format, &mut data)
                    .expect("writing to a Vec cannot fail");
                data.pop(); // The newline.
                let time = batch
                    .time(i)
                    .map(|t| t.as_millisecond())
                    .unwrap_or_else(|| {
                        batch
                            .read_at()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map(|d| d.as_millis() as i64)
                            .unwrap_or(0)
                    });
                records.push(Prepared {
                    topic,
                    key,
                    value: start..data.len(),
                    headers,
                    timestamp_ms: time,
                });
            }
        }
        Payload {
            data: Bytes::from(data),
            records,
            topics,
            state: std::sync::Mutex::new(None),
        }
    }

    async fn send(&self, payload: &Payload, _request: &Request) -> Outcome {
        match self.attempt(payload).await {
            Ok(outcome) => outcome,
            Err(e) => Outcome::Retry {
                reason: format!("{e:#}"),
                after: None,
            },
        }
    }
}

impl KafkaTransport {
    /// One attempt: metadata, partitions, producer id, then one Produce request per leader
    /// for the partitions not yet settled.
    async fn attempt(&self, payload: &Payload) -> Result<Outcome> {
        let mut cluster = self.cluster.lock().await;
        let missing: Vec<String> = payload
            .topics
            .iter()
            .filter(|t| !cluster.topics.contains_key(*t))
            .cloned()
            .collect();
        if !missing.is_empty() {
            cluster
                .refresh(&payload.topics)
                .await
                .context("asking for metadata")?;
            for t in &payload.topics {
                if cluster.topics.get(t).is_none_or(|m| m.leaders.is_empty()) {
                    anyhow::bail!("topic `{t}` does not exist (or has no partitions)");
                }
            }
        }
        // Partitions are chosen once per request, so a retry sends the same batches.
        let mut batches = {
            let mut state = payload.state.lock().expect("not poisoned");
            match state.take() {
                Some(b) => b,
                None => self.partition(payload, &cluster),
            }
        };
        let result = self.produce(payload, &mut cluster, &mut batches).await;
        let outcome = summarise(&batches, payload, result);
        *payload.state.lock().expect("not poisoned") = Some(batches);
        Ok(outcome)
    }

    fn partition(
        &self,
        payload: &Payload,
        cluster: &Cluster,
    ) -> HashMap<(usize, i32), PartitionBatch> {
        let turn = self.round_robin.fetch_add(1, Ordering::Relaxed);
        let mut batches: HashMap<(usize, i32), PartitionBatch> = HashMap::new();
        for (i, r) in payload.records.iter().enumerate() {
            let count = cluster.topics[&payload.topics[r.topic]]
                .leaders
                .len()
                .max(1);
            let partition = match &r.key {
                Some(k) => (murmur2(&payload.data[k.clone()]) & 0x7fff_ffff) as usize % count,
                None => (turn + r.topic) % count,
            } as i32;
            batches
                .entry((r.topic, partition))
                .or_insert_with(|| PartitionBatch {
                    records: Vec::new(),
                    status: Status::Pending,
                    sequence: None,
                })
                .records
                .push(i);
        }
        batches
    }

    async fn produce(
        &self,
        payload: &Payload,
        cluster: &mut Cluster,
        batches: &mut HashMap<(usize, i32), PartitionBatch>,
    ) -> Result<()> {
        let mut producer = self.producer.lock().await;
        if producer.enabled && producer.id.is_none() {
            self.init_producer(&mut producer, cluster).await?;
        }
        if let Some((pid, epoch)) = producer.id {
            // Batches sent under an older producer id get new sequence numbers.
            let mut keys: Vec<_> = batches.keys().copied().collect();
            keys.sort_unstable();
            for key in keys {
                let b = batches.get_mut(&key).expect("listed above");
                if b.status == Status::Pending
                    && b.sequence.is_none_or(|(p, e, _)| (p, e) != (pid, epoch))
                {
                    let next = producer
                        .sequences
                        .entry((payload.topics[key.0].clone(), key.1))
                        .or_insert(0);
                    b.sequence = Some((pid, epoch, *next));
                    *next = next.wrapping_add(b.records.len() as i32) & i32::MAX;
                }
            }
        }
        // Group the pending batches by leader.
        let mut by_leader: HashMap<i32, Vec<(usize, i32)>> = HashMap::new();
        let mut stale = false;
        for (key, b) in batches.iter() {
            if b.status != Status::Pending {
                continue;
            }
            match cluster.topics[&payload.topics[key.0]]
                .leaders
                .get(key.1 as usize)
                .copied()
                .flatten()
            {
                Some(leader) if cluster.brokers.contains_key(&leader) => {
                    by_leader.entry(leader).or_default().push(*key)
                }
                _ => stale = true,
            }
        }
        let mut first_error: Option<anyhow::Error> = None;
        let mut reset_producer = false;
        for (leader, keys) in by_leader {
            let conn = Arc::clone(&cluster.brokers[&leader]);
            let mut conn = conn.lock().await;
            match self.produce_to(&mut conn, payload, batches, &keys).await {
                Ok(errors) => {
                    for (key, error) in errors {
                        let b = batches.get_mut(&key).expect("sent");
                        match error {
                            None | Some(ResponseError::DuplicateSequenceNumber) => {
                                b.status = Status::Delivered
                            }
                            Some(
                                e @ (ResponseError::OutOfOrderSequenceNumber
                                | ResponseError::UnknownProducerId
                                | ResponseError::InvalidProducerEpoch),
                            ) => {
                                tracing::warn!(sink = %self.name, broker = conn.address(), error = %e, "the broker lost track of tailcar's producer; starting a new one (records of this batch may be stored twice)");
                                reset_producer = true;
                                first_error.get_or_insert_with(|| anyhow::anyhow!("{e}"));
                            }
                            Some(e) if e.is_retriable() => {
                                stale = true;
                                first_error.get_or_insert_with(|| {
                                    anyhow::anyhow!(
                                        "{e} (topic {}, partition {}, broker {})",
                                        payload.topics[key.0],
                                        key.1,
                                        conn.address()
                                    )
                                });
                            }
                            Some(e) => {
                                b.status = Status::Failed(format!(
                                    "{e} (topic {}, partition {}, broker {})",
                                    payload.topics[key.0],
                                    key.1,
                                    conn.address()
                                ));
                                // The broker did not take these sequence numbers.
                                reset_producer |= b.sequence.is_some();
                            }
                        }
                    }
                }
                Err(e) => {
                    stale = true;
                    first_error.get_or_insert(e);
                }
            }
        }
        if reset_producer {
            producer.id = None;
            producer.sequences.clear();
        }
        if stale {
            let _ = cluster.refresh(&payload.topics).await;
        }
        match first_error {
            Some(e) => Err(e),
            None if stale => Err(anyhow::anyhow!("some partitions have no leader now")),
            None => Ok(()),
        }
    }

    async fn init_producer(&self, producer: &mut Producer, cluster: &mut Cluster) -> Result<()> {
        if cluster.brokers.is_empty() {
            cluster.refresh(&[]).await.context("asking for metadata")?;
        }
        let conn = cluster
            .any_broker()
            .context("the cluster lists no brokers")?;
        let mut conn = conn.lock().await;
        let version = match conn.request_version(ApiKey::InitProducerId, 0..=4).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(sink = %self.name, reason = %format!("{e:#}"), "the broker has no idempotent producers; retried batches may be stored twice");
                producer.enabled = false;
                return Ok(());
            }
        };
        let r = conn
            .request(
                InitProducerIdRequest::default()
                    .with_transactional_id(None)
                    .with_transaction_timeout_ms(i32::MAX)
                    .with_producer_id((-1).into())
                    .with_producer_epoch(-1),
                version,
            )
            .await
            .context("asking for a producer id")?;
        if let Some(e) = r.error_code.err() {
            if e.is_retriable() {
                anyhow::bail!("asking for a producer id: {e}");
            }
            tracing::warn!(sink = %self.name, error = %e, "the broker refused a producer id; retried batches may be stored twice");
            producer.enabled = false;
            return Ok(());
        }
        producer.id = Some((r.producer_id.0, r.producer_epoch));
        producer.sequences.clear();
        tracing::debug!(sink = %self.name, producer_id = r.producer_id.0, "idempotent producer");
        Ok(())
    }

    /// Sends one Produce request for `keys` to one broker; each partition's error, if any.
    async fn produce_to(
        &self,
        conn: &mut BrokerConn,
        payload: &Payload,
        batches: &HashMap<(usize, i32), PartitionBatch>,
        keys: &[(usize, i32)],
    ) -> Result<Vec<((usize, i32), Option<ResponseError>)>> {
        let version = conn.request_version(ApiKey::Produce, 3..=9).await?;
        let mut topics: IndexMap<usize, Vec<PartitionProduceData>> = IndexMap::new();
        for key in keys {
            let b = &batches[key];
            let records = self.records(payload, b);
            let mut buf = BytesMut::new();
            RecordBatchEncoder::encode(
                &mut buf,
                records.iter(),
                &RecordEncodeOptions {
                    version: 2,
                    compression: self.compression,
                },
            )
            .context("encoding a record batch")?;
            topics.entry(key.0).or_default().push(
                PartitionProduceData::default()
                    .with_index(key.1)
                    .with_records(Some(buf.freeze())),
            );
        }
        let request = ProduceRequest::default()
            .with_acks(self.acks)
            .with_timeout_ms(self.timeout_ms)
            .with_topic_data(
                topics
                    .into_iter()
                    .map(|(t, partitions)| {
                        TopicProduceData::default()
                            .with_name(TopicName(StrBytes::from_string(payload.topics[t].clone())))
                            .with_partition_data(partitions)
                    })
                    .collect(),
            );
        if self.acks == 0 {
            conn.send_only(request, version).await?;
            return Ok(keys.iter().map(|k| (*k, None)).collect());
        }
        let response = conn.request(request, version).await?;
        let mut errors = Vec::with_capacity(keys.len());
        for t in &response.responses {
            let Some(topic) = payload.topics.iter().position(|n| n == t.name.0.as_str()) else {
                continue;
            };
            for p in &t.partition_responses {
                let key = (topic, p.index);
                if keys.contains(&key) {
                    errors.push((key, p.error_code.err()));
                }
            }
        }
        // A partition the broker did not answer for is sent again.
        for key in keys {
            if !errors.iter().any(|(k, _)| k == key) {
                errors.push((*key, Some(ResponseError::UnknownServerError)));
            }
        }
        Ok(errors)
    }

    fn records(&self, payload: &Payload, b: &PartitionBatch) -> Vec<Record> {
        let (pid, epoch, base) = b.sequence.unwrap_or((-1, -1, -1));
        b.records
            .iter()
            .enumerate()
            .map(|(n, &i)| {
                let r = &payload.records[i];
                Record {
                    transactional: false,
                    control: false,
                    delete_horizon: false,
                    partition_leader_epoch: -1,
                    producer_id: pid,
                    producer_epoch: epoch,
                    timestamp_type: TimestampType::Creation,
                    offset: n as i64,
                    // Offset minus sequence is the same for every record of a batch, which keeps
                    // them in one batch; without a producer id the base sequence is -1.
                    sequence: if pid < 0 {
                        n as i32 - 1
                    } else {
                        base.wrapping_add(n as i32)
                    },
                    timestamp: r.timestamp_ms,
                    key: r.key.clone().map(|k| payload.data.slice(k)),
                    value: Some(payload.data.slice(r.value.clone())),
                    headers: self
                        .headers
                        .iter()
                        .zip(&r.headers)
                        .map(|((name, _), v)| (name.clone(), Some(payload.data.slice(v.clone()))))
                        .collect(),
                }
            })
            .collect()
    }
}

/// What the request's partitions add up to.
fn summarise(
    batches: &HashMap<(usize, i32), PartitionBatch>,
    payload: &Payload,
    result: Result<()>,
) -> Outcome {
    if batches.values().any(|b| b.status == Status::Pending) {
        return Outcome::Retry {
            reason: match result {
                Err(e) => format!("{e:#}"),
                Ok(()) => "some partitions are not written yet".into(),
            },
            after: None,
        };
    }
    let mut permanent: Vec<(usize, String)> = batches
        .values()
        .filter_map(|b| match &b.status {
            Status::Failed(why) => Some(
                b.records
                    .iter()
                    .map(|&i| (i, why.clone()))
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        })
        .flatten()
        .collect();
    if permanent.is_empty() {
        return Outcome::Delivered;
    }
    permanent.sort_unstable_by_key(|p| p.0);
    if permanent.len() == payload.records.len() {
        return Outcome::Permanent(permanent.swap_remove(0).1);
    }
    Outcome::Partial {
        retry: Vec::new(),
        permanent,
        reason: "the broker refused some partitions' records".into(),
    }
}

/// Kafka's murmur2 (as its Java client's default partitioner uses it).
fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= (rest[2] as u32) << 16;
    }
    if rest.len() >= 2 {
        h ^= (rest[1] as u32) << 8;
    }
    if !rest.is_empty() {
        h ^= rest[0] as u32;
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The values of Kafka's own tests of its murmur2 (`UtilsTest`).
    #[test]
    fn murmur2_matches_kafka() {
        for (input, want) in [
            (&b"21"[..], -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
            (b"abc", 479470107),
        ] {
            assert_eq!(murmur2(input), want, "{}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn sasl_mechanisms_are_spelled_as_kafka_spells_them() {
        for (text, want) in [
            ("PLAIN", Mechanism::Plain),
            ("SCRAM-SHA-256", Mechanism::ScramSha256),
            ("SCRAM-SHA-512", Mechanism::ScramSha512),
        ] {
            assert_eq!(serde_yaml::from_str::<Mechanism>(text).unwrap(), want);
        }
        assert!(serde_yaml::from_str::<Mechanism>("SCRAM-SHA512").is_err());
    }
}
