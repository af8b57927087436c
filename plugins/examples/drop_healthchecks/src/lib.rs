//! `drop_healthchecks`: drops access-log records of requests to health-check paths.
//!
//! Config: `paths`, a list (or a comma-separated string) of paths; default
//! `/healthz,/readyz,/livez,/ping`. A request matches when its path, without the query string,
//! is one of them. The path is taken from the `path` field when a parser set one, else from the
//! request in the line (`"GET /healthz HTTP/1.1"`). Dropped records are counted as
//! `healthchecks_dropped`.

use tailcar_plugin::{Config, Plugin, Record, Verdict};

pub struct DropHealthchecks {
    paths: Vec<String>,
}

const DEFAULT_PATHS: &str = "/healthz,/readyz,/livez,/ping";

/// The path of the first quoted request (`"METHOD /path?query PROTO"`) in an access-log line.
fn request_path(line: &[u8]) -> Option<&[u8]> {
    let quote = line.iter().position(|&b| b == b'"')?;
    let request = &line[quote + 1..];
    let space = request.iter().position(|&b| b == b' ')?;
    let rest = &request[space + 1..];
    let end = rest
        .iter()
        .position(|&b| b == b' ' || b == b'"')
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

fn without_query(path: &[u8]) -> &[u8] {
    match path.iter().position(|&b| b == b'?') {
        Some(q) => &path[..q],
        None => path,
    }
}

impl Plugin for DropHealthchecks {
    fn init(config: Config) -> Result<Self, String> {
        config.deny_unknown(&["paths"])?;
        let paths = match config.list("paths")? {
            Some(p) => p,
            None => DEFAULT_PATHS.split(',').map(String::from).collect(),
        };
        if let Some(bad) = paths.iter().find(|p| !p.starts_with('/')) {
            return Err(format!(
                "`paths`: `{bad}` is not a path (it must start with `/`)"
            ));
        }
        Ok(DropHealthchecks { paths })
    }

    fn process(&mut self, record: &mut Record<'_>) -> Verdict {
        let field = record.field("path");
        let path = match field.as_ref().and_then(|v| v.as_str()) {
            Some(p) => Some(p.as_bytes()),
            None => request_path(record.line()),
        };
        match path {
            Some(p) if self.paths.iter().any(|h| h.as_bytes() == without_query(p)) => {
                tailcar_plugin::count("healthchecks_dropped", 1);
                Verdict::Drop
            }
            _ => Verdict::Keep,
        }
    }
}

tailcar_plugin::export!(DropHealthchecks);

#[cfg(test)]
mod tests {
    use super::*;
    use tailcar_plugin::testing::Harness;

    const LINES: [&str; 4] = [
        r#"10.0.0.1 - - [17/May/2015:10:05:03 +0000] "GET /healthz HTTP/1.1" 200 2 "-" "kube-probe/1.30""#,
        r#"10.0.0.1 - - [17/May/2015:10:05:03 +0000] "GET /readyz?verbose=1 HTTP/1.1" 200 2 "-" "kube-probe/1.30""#,
        r#"10.0.0.2 - - [17/May/2015:10:05:04 +0000] "GET /healthz/deep HTTP/1.1" 200 2 "-" "curl""#,
        r#"10.0.0.3 - - [17/May/2015:10:05:05 +0000] "POST /api/orders HTTP/1.1" 201 17 "-" "curl""#,
    ];

    #[test]
    fn drops_default_paths_with_and_without_query() {
        let mut h = Harness::<DropHealthchecks>::new("{}").unwrap();
        let out = h.run(&LINES);
        let kept: Vec<usize> = out.iter().map(|o| o.source).collect();
        assert_eq!(kept, [2, 3]);
    }

    #[test]
    fn configured_paths_and_path_field() {
        let mut h =
            Harness::<DropHealthchecks>::new(r#"{"paths": "/api/orders, /healthz/deep"}"#).unwrap();
        let kept: Vec<usize> = h.run(&LINES).iter().map(|o| o.source).collect();
        assert_eq!(kept, [0, 1]);
        let out = h.run_records(&[
            (
                b"parsed already",
                serde_json::json!({"path": "/healthz/deep"}),
            ),
            (b"parsed already", serde_json::json!({"path": "/"})),
        ]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].source, 1);
    }

    #[test]
    fn refuses_a_path_without_slash() {
        let err = Harness::<DropHealthchecks>::new(r#"{"paths": ["healthz"]}"#)
            .err()
            .unwrap();
        assert_eq!(
            err,
            "`paths`: `healthz` is not a path (it must start with `/`)"
        );
    }
}
