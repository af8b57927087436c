//! The `syslog` sink: records as syslog messages to rsyslog, syslog-ng or any syslog server,
//! RFC 5424 (default) or RFC 3164, over TCP (octet-counted frames per RFC 6587 by default, or
//! one message per line), TLS, or UDP (one datagram per message).
//!
//! Facility, severity, hostname, app-name, procid and msgid are templates (`{stream}`,
//! `{FIELD}`); severity and facility take names (`err`, `warning`, `local0`) or numbers, and the
//! common log-level spellings (`error`, `warn`, `fatal`, `trace`). The message is the line as
//! read. A message longer than `max_message_size` is cut (at a character boundary) and counted
//! in `tailcar_sink_truncated_records`. Over TCP and TLS a request is acknowledged when written
//! and flushed, as for the `tcp` sink; over UDP when sent, which promises nothing about arrival.

use std::sync::Arc;

use serde::Deserialize;
use tokio::sync::mpsc;

use super::util::batcher::Request;
use super::util::delivery::RemoteOptions;
use super::util::delivery::{self, Transport, remote_sink_config};
use super::util::http::TlsConfig;
use super::util::net::{Connector, DatagramSender, StreamWriter};
use super::util::retry::Outcome;
use super::util::template::Template;
use super::{SinkBatch, SinkContext, SinkExit};
use crate::event::Batch;
use crate::stats::SinkStats;
use crate::units::{KeyedResult, SettingError};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    #[default]
    Tcp,
    Tls,
    Udp,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageFormat {
    #[default]
    Rfc5424,
    Rfc3164,
}

/// How messages are delimited on TCP and TLS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Framing {
    /// `LEN SP MSG` (RFC 6587 3.4.1): messages may hold newlines.
    #[default]
    OctetCounting,
    /// `MSG LF`: newlines inside a message are sent as spaces.
    Newline,
}

fn template(s: &str) -> Template {
    Template::parse(s)
}
fn default_facility() -> Template {
    template("user")
}
fn default_severity() -> Template {
    template("info")
}
fn default_app_name() -> Template {
    template("{stream}")
}
fn default_max() -> u64 {
    8 * 1024
}
fn max_in_flight() -> usize {
    1
}

remote_sink_config! {
    pub struct SyslogConfig {
        /// `host:port` of the server.
        pub address: String,
        /// `tcp` (default), `tls` or `udp`.
        #[serde(default)]
        pub protocol: Protocol,
        /// `rfc5424` (default) or `rfc3164`.
        #[serde(default)]
        pub format: MessageFormat,
        /// `octet_counting` (default) or `newline`, for TCP and TLS.
        #[serde(default)]
        pub framing: Framing,
        /// Facility name or number, a template (default `user`).
        #[serde(default = "default_facility")]
        pub facility: Template,
        /// Severity name or number, a template such as `{level}` (default `info`).
        #[serde(default = "default_severity")]
        pub severity: Template,
        /// The HOSTNAME field (default: this machine's host name, the pod's name in Kubernetes).
        pub hostname: Option<Template>,
        /// The APP-NAME field (default `{stream}`).
        #[serde(default = "default_app_name")]
        pub app_name: Template,
        /// The PROCID field (default none).
        pub proc_id: Option<Template>,
        /// The MSGID field (RFC 5424; default none).
        pub msg_id: Option<Template>,
        /// Longest message, header included (default 8KiB); longer ones are cut and counted.
        #[serde(default = "default_max", deserialize_with = "crate::units::de_buffer_size")]
        pub max_message_size: u64,
        /// TLS settings for `protocol: tls`.
        pub tls: Option<TlsConfig>,
    }
    max_in_flight_default = "max_in_flight"
}

impl SyslogConfig {
    /// Checks the settings; errors are keyed relative to the sink.
    pub fn check(&self) -> Result<(), SettingError> {
        super::util::net::check_address(&self.address).key("address")?;
        if self.tls.is_some() && self.protocol != Protocol::Tls {
            return Err(SettingError::new("tls", "only used with `protocol: tls`"));
        }
        if self.max_message_size < 480 {
            return Err(SettingError::new(
                "max_message_size",
                "at least 480 bytes (RFC 5424 asks receivers for 480)",
            ));
        }
        if let Some(t) = &self.tls {
            super::util::http::tls_client_config(t).map_err(|e| e.under("tls"))?;
        }
        Ok(())
    }

    /// How records become framed messages.
    fn formatter(&self) -> Formatter {
        let hostname = self.hostname.clone().unwrap_or_else(|| {
            let host = rustix::system::uname()
                .nodename()
                .to_string_lossy()
                .into_owned();
            Template::parse(&host.replace(['{', '}'], ""))
        });
        Formatter {
            format: self.format,
            framing: match self.protocol {
                Protocol::Udp => None,
                _ => Some(self.framing),
            },
            facility: self.facility.clone(),
            severity: self.severity.clone(),
            hostname,
            app_name: self.app_name.clone(),
            proc_id: self.proc_id.clone(),
            msg_id: self.msg_id.clone(),
            max: self.max_message_size as usize,
        }
    }

    /// Every record of `batch` as the messages this sink sends, back to back.
    #[cfg(test)]
    pub(crate) fn write_all(&self, batch: &Batch, out: &mut Vec<u8>) {
        let f = self.formatter();
        for i in 0..batch.len() {
            f.write(batch, i, out);
        }
    }
}

impl super::Sink for SyslogConfig {
    fn kind(&self) -> &'static str {
        "syslog"
    }

    fn spawn(
        &self,
        name: Arc<str>,
        input: mpsc::Receiver<SinkBatch>,
        exit: mpsc::UnboundedSender<SinkExit>,
        ctx: &SinkContext,
    ) -> anyhow::Result<()> {
        let wire = match self.protocol {
            Protocol::Udp => Wire::Udp(DatagramSender::new(&self.address)?),
            Protocol::Tcp | Protocol::Tls => {
                let tls = match self.protocol {
                    Protocol::Tls => Some(self.tls.clone().unwrap_or_default()),
                    _ => None,
                };
                let connector = Connector::new(&self.address, tls.as_ref(), self.request_timeout)?;
                Wire::Stream(StreamWriter::new(Arc::clone(&name), connector))
            }
        };
        let transport = SyslogTransport {
            wire,
            formatter: self.formatter(),
            stats: ctx.stats(&name),
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
        let mut out = vec![
            ("facility".to_string(), self.facility.clone()),
            ("severity".to_string(), self.severity.clone()),
        ];
        out.extend(self.hostname.clone().map(|t| ("hostname".into(), t)));
        out.push(("app_name".into(), self.app_name.clone()));
        out.extend(self.proc_id.clone().map(|t| ("proc_id".into(), t)));
        out.extend(self.msg_id.clone().map(|t| ("msg_id".into(), t)));
        out
    }

    fn describe(&self) -> String {
        format!(
            "syslog {} {:?} {:?}",
            self.address, self.protocol, self.format
        )
        .to_lowercase()
    }
}

enum Wire {
    Stream(StreamWriter),
    Udp(DatagramSender),
}

struct SyslogTransport {
    wire: Wire,
    formatter: Formatter,
    stats: Arc<SinkStats>,
}

/// The messages of a request: one buffer and where each framed message ends.
struct Payload {
    data: Vec<u8>,
    ends: Vec<usize>,
}

impl Transport for SyslogTransport {
    type Payload = Payload;

    fn encode(&self, request: &Request) -> Payload {
        let mut p = Payload {
            data: Vec::with_capacity(request.bytes + request.records * 80),
            ends: Vec::with_capacity(request.records),
        };
        let mut truncated = 0;
        for part in &request.parts {
            for i in part.range.clone() {
                truncated += self.formatter.write(&part.batch, i, &mut p.data) as u64;
                p.ends.push(p.data.len());
            }
        }
        SinkStats::add(&self.stats.truncated, truncated);
        p
    }

    async fn send(&self, payload: &Payload, _request: &Request) -> Outcome {
        let result = match &self.wire {
            Wire::Stream(w) => w.write(&payload.data).await,
            Wire::Udp(u) => {
                let mut start = 0;
                u.send(payload.ends.iter().map(|&end| {
                    let d = &payload.data[start..end];
                    start = end;
                    d
                }))
                .await
            }
        };
        match result {
            Ok(()) => Outcome::Delivered,
            Err(e) => Outcome::Retry {
                reason: format!("{e:#}"),
                after: None,
            },
        }
    }
}

/// Writes records as syslog messages.
struct Formatter {
    format: MessageFormat,
    /// `None` for datagrams.
    framing: Option<Framing>,
    facility: Template,
    severity: Template,
    hostname: Template,
    app_name: Template,
    proc_id: Option<Template>,
    msg_id: Option<Template>,
    max: usize,
}

impl Formatter {
    /// Appends record `i`'s framed message to `out`; whether it was cut.
    fn write(&self, batch: &Batch, i: usize, out: &mut Vec<u8>) -> bool {
        let mut msg = Vec::with_capacity(128);
        let mut text = String::new();
        let fill = |t: &Template, text: &mut String| {
            text.clear();
            t.render_into(batch, i, text);
        };
        fill(&self.facility, &mut text);
        let facility = facility_code(&text).unwrap_or(1);
        fill(&self.severity, &mut text);
        let severity = severity_code(&text).unwrap_or(6);
        let pri = facility * 8 + severity;
        let time = batch.time(i).unwrap_or_else(|| {
            jiff::Timestamp::try_from(batch.read_at()).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        });
        fill(&self.hostname, &mut text);
        let hostname = header_field(&text, 255);
        fill(&self.app_name, &mut text);
        let app_name = header_field(&text, 48);
        let proc_id = self.proc_id.as_ref().map(|t| {
            fill(t, &mut text);
            header_field(&text, 128)
        });
        match self.format {
            MessageFormat::Rfc5424 => {
                let msg_id = self.msg_id.as_ref().map(|t| {
                    fill(t, &mut text);
                    header_field(&text, 32)
                });
                let ts = time.strftime("%Y-%m-%dT%H:%M:%S%.6fZ");
                msg.extend_from_slice(
                    format!(
                        "<{pri}>1 {ts} {hostname} {app_name} {} {} - ",
                        proc_id.as_deref().unwrap_or("-"),
                        msg_id.as_deref().unwrap_or("-"),
                    )
                    .as_bytes(),
                );
            }
            MessageFormat::Rfc3164 => {
                // `Mmm dd hh:mm:ss`, day padded with a space, in UTC.
                let ts = time.strftime("%b %e %H:%M:%S");
                let tag: String = app_name
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
                    .take(32)
                    .collect();
                let tag = if tag.is_empty() { "-".to_string() } else { tag };
                let pid = proc_id.map(|p| format!("[{p}]")).unwrap_or_default();
                msg.extend_from_slice(format!("<{pri}>{ts} {hostname} {tag}{pid}: ").as_bytes());
            }
        }
        let line = batch.line_at(i);
        let room = self.max.saturating_sub(msg.len());
        let cut = line.len() > room;
        let body = if cut { cut_at_char(line, room) } else { line };
        let start = msg.len();
        msg.extend_from_slice(body);
        match self.framing {
            Some(Framing::OctetCounting) => {
                out.extend_from_slice(format!("{} ", msg.len()).as_bytes());
                out.extend_from_slice(&msg);
            }
            Some(Framing::Newline) => {
                for b in &mut msg[start..] {
                    if *b == b'\n' || *b == b'\r' {
                        *b = b' ';
                    }
                }
                out.extend_from_slice(&msg);
                out.push(b'\n');
            }
            None => out.extend_from_slice(&msg),
        }
        cut
    }
}

/// A header field: printable ASCII without spaces, at most `max` characters, `-` when empty.
fn header_field(s: &str, max: usize) -> String {
    let f: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if f.is_empty() { "-".into() } else { f }
}

/// The longest prefix of `line` within `room` bytes that does not split a UTF-8 character.
fn cut_at_char(line: &[u8], room: usize) -> &[u8] {
    let mut end = room.min(line.len());
    while end > 0 && end < line.len() && (line[end] & 0xC0) == 0x80 {
        end -= 1;
    }
    &line[..end]
}

fn severity_code(s: &str) -> Option<u8> {
    if let Ok(n) = s.trim().parse::<u8>() {
        return (n <= 7).then_some(n);
    }
    Some(match s.trim().to_ascii_lowercase().as_str() {
        "emerg" | "emergency" | "panic" => 0,
        "alert" => 1,
        "crit" | "critical" | "fatal" => 2,
        "err" | "error" => 3,
        "warning" | "warn" => 4,
        "notice" => 5,
        "info" | "informational" | "information" => 6,
        "debug" | "trace" => 7,
        _ => return None,
    })
}

fn facility_code(s: &str) -> Option<u8> {
    if let Ok(n) = s.trim().parse::<u8>() {
        return (n <= 23).then_some(n);
    }
    const NAMES: [&str; 24] = [
        "kern",
        "user",
        "mail",
        "daemon",
        "auth",
        "syslog",
        "lpr",
        "news",
        "uucp",
        "cron",
        "authpriv",
        "ftp",
        "ntp",
        "security",
        "console",
        "solaris-cron",
        "local0",
        "local1",
        "local2",
        "local3",
        "local4",
        "local5",
        "local6",
        "local7",
    ];
    let s = s.trim().to_ascii_lowercase();
    NAMES.iter().position(|n| *n == s).map(|p| p as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Source;
    use std::time::{Duration, SystemTime};

    fn formatter(format: MessageFormat, framing: Option<Framing>, max: usize) -> Formatter {
        Formatter {
            format,
            framing,
            facility: Template::parse("local3"),
            severity: Template::parse("{level}"),
            hostname: Template::parse("web-7f9c"),
            app_name: Template::parse("{stream}"),
            proc_id: None,
            msg_id: Template::parse("{kind}").into(),
            max,
        }
    }

    fn batch(line: &[u8], level: &str) -> Batch {
        let src = Arc::new(Source {
            stream: "access".into(),
            path: "/var/log/app/access.log".into(),
            file_id: None,
        });
        let mut b = Batch::new(
            src,
            SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
        );
        b.push_line(line, 0, 0);
        b.fields_mut().writer(0).text("level", level);
        b
    }

    #[test]
    fn rfc5424_octet_counted() {
        let f = formatter(MessageFormat::Rfc5424, Some(Framing::OctetCounting), 8192);
        let mut out = Vec::new();
        assert!(!f.write(&batch(b"multi\nline \xc3\xbc", "error"), 0, &mut out));
        let msg = "<155>1 2023-11-14T22:13:20.123000Z web-7f9c access - - - multi\nline ü";
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("{} {msg}", msg.len())
        );
    }

    #[test]
    fn rfc3164_newline_framed_and_cut_at_a_character() {
        let f = formatter(MessageFormat::Rfc3164, Some(Framing::Newline), 480);
        let mut out = Vec::new();
        let long = "é".repeat(400);
        assert!(f.write(&batch(long.as_bytes(), "warn"), 0, &mut out));
        let text = String::from_utf8(out).expect("cut between characters");
        assert!(
            text.starts_with("<156>Nov 14 22:13:20 web-7f9c access: éé"),
            "{text}"
        );
        assert!(text.len() <= 481 && text.ends_with("é\n"), "{}", text.len());
    }

    #[test]
    fn severity_and_facility_names() {
        assert_eq!(severity_code("WARN"), Some(4));
        assert_eq!(severity_code("fatal"), Some(2));
        assert_eq!(severity_code("7"), Some(7));
        assert_eq!(severity_code("loud"), None);
        assert_eq!(facility_code("local7"), Some(23));
        assert_eq!(facility_code("daemon"), Some(3));
        assert_eq!(facility_code("24"), None);
    }
}
