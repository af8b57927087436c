//! Container runtime log formats, for files that hold a container's output:
//!
//! - `cri` (containerd, CRI-O): `2016-10-06T00:17:09.669794202Z stdout F the line`. Fields
//!   `stream`, `logtag` and `log`; the event time is the line's. The stream joins `P` (partial)
//!   chunks into one `F` line before this parser sees it.
//! - `docker` (json-file): `{"log":"the line\n","stream":"stdout","time":"..."}`. Fields `log`
//!   (its trailing newline removed), `stream`, and `attrs` when present; the event time is
//!   `time`. Entries split at 16 KiB are joined first.

#[cfg(test)]
use crate::event::Fields;
use crate::event::fields::FieldSink;

/// Every field [`parse_cri`] sets.
pub const CRI_FIELDS: &[&str] = &["stream", "logtag", "log"];
/// Every field [`parse_docker`] can set.
pub const DOCKER_FIELDS: &[&str] = &["log", "stream", "attrs"];

pub fn parse_cri(
    line: &[u8],
    fields: &mut impl FieldSink,
) -> Result<Option<jiff::Timestamp>, String> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let (Some(time), Some(stream), Some(tag)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("not a CRI log line (TIME STREAM TAG LOG)".into());
    };
    let time = std::str::from_utf8(time)
        .ok()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok());
    let Some(time) = time else {
        return Err("not a CRI log line: the first field is not an RFC 3339 time".into());
    };
    if stream != b"stdout" && stream != b"stderr" {
        return Err("not a CRI log line: the stream is neither stdout nor stderr".into());
    }
    fields.text_lossy("stream", stream);
    fields.text_lossy("logtag", tag);
    fields.text_lossy("log", parts.next().unwrap_or_default());
    Ok(Some(time))
}

pub fn parse_docker(
    line: &[u8],
    fields: &mut impl FieldSink,
) -> Result<Option<jiff::Timestamp>, String> {
    let value: serde_json::Value =
        serde_json::from_slice(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let serde_json::Value::Object(mut map) = value else {
        return Err("not a Docker json-file entry".into());
    };
    let Some(serde_json::Value::String(mut log)) = map.remove("log") else {
        return Err("not a Docker json-file entry: no `log` string".into());
    };
    if log.ends_with('\n') {
        log.pop();
        if log.ends_with('\r') {
            log.pop();
        }
    }
    fields.text("log", &log);
    if let Some(s) = map.remove("stream") {
        fields.json("stream", s);
    }
    if let Some(a) = map.remove("attrs") {
        fields.json("attrs", a);
    }
    Ok(map
        .get("time")
        .and_then(|t| t.as_str())
        .and_then(|t| t.parse::<jiff::Timestamp>().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cri_lines() {
        let mut f = Fields::new();
        let t = parse_cri(
            b"2016-10-06T00:17:09.669794202Z stderr F the line, with  spaces",
            &mut f,
        )
        .unwrap();
        assert_eq!(f["stream"], "stderr");
        assert_eq!(f["logtag"], "F");
        assert_eq!(f["log"], "the line, with  spaces");
        assert_eq!(t.unwrap().to_string(), "2016-10-06T00:17:09.669794202Z");
        assert!(parse_cri(b"2016-10-06 stdout F x", &mut Fields::new()).is_err());
        assert!(parse_cri(b"plain text", &mut Fields::new()).is_err());
    }

    #[test]
    fn docker_lines() {
        let mut f = Fields::new();
        let t = parse_docker(br#"{"log":"hello\r\n","stream":"stdout","time":"2019-01-01T11:11:11.111111111Z","attrs":{"tag":"x"}}"#, &mut f)
            .unwrap();
        assert_eq!(f["log"], "hello");
        assert_eq!(f["stream"], "stdout");
        assert_eq!(f["attrs"]["tag"], "x");
        assert_eq!(t.unwrap().to_string(), "2019-01-01T11:11:11.111111111Z");
        assert!(parse_docker(br#"{"msg":"no log"}"#, &mut Fields::new()).is_err());
    }
}
