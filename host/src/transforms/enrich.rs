//! Kubernetes enrichment without the API server: a sidecar knows its pod from the Downward API.
//!
//! ```yaml
//! enrich:
//!   pod: true                              # from POD_NAME, POD_NAMESPACE, NODE_NAME, POD_IP, CONTAINER_NAME
//!                                          # (the Downward API cannot expose a container's name:
//!                                          # the manifest sets CONTAINER_NAME as a literal)
//!   labels: /etc/podinfo/labels            # a Downward API volume file: key="value" per line
//!   annotations: /etc/podinfo/annotations
//!   file: true                             # the source file path, as the field `file`
//! ```
//!
//! Records get a `kubernetes` object (`pod_name`, `namespace`, `node_name`, `pod_ip`,
//! `container_name` for the variables that are set, `labels`, `annotations`). The label and
//! annotation files are re-read when they change (the kubelet rewrites them when the pod's
//! labels change), checked at most every [`RECHECK`]. No RBAC, no API calls.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;

use crate::event::{Batch, Fields, Value};
use crate::stats::StreamStats;
use crate::transforms::Transform;

/// How often the label and annotation files are checked for changes.
pub const RECHECK: Duration = Duration::from_secs(10);

/// The Downward API environment variables read with `pod: true`, and the field each becomes.
const POD_VARS: [(&str, &str); 5] = [
    ("POD_NAME", "pod_name"),
    ("POD_NAMESPACE", "namespace"),
    ("NODE_NAME", "node_name"),
    ("POD_IP", "pod_ip"),
    ("CONTAINER_NAME", "container_name"),
];

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EnrichConfig {
    /// Add the pod's identity from the Downward API environment variables.
    #[serde(default)]
    pub pod: bool,
    /// A Downward API file of the pod's labels.
    pub labels: Option<PathBuf>,
    /// A Downward API file of the pod's annotations.
    pub annotations: Option<PathBuf>,
    /// Add the source file's path as the field `file`.
    #[serde(default)]
    pub file: bool,
}

impl EnrichConfig {
    pub fn build(&self) -> Enrich {
        let mut pod = Fields::new();
        if self.pod {
            for (var, field) in POD_VARS {
                if let Ok(v) = std::env::var(var) {
                    pod.insert(field.into(), v.into());
                }
            }
        }
        Enrich {
            pod,
            labels: self.labels.clone().map(PodInfoFile::new),
            annotations: self.annotations.clone().map(PodInfoFile::new),
            file: self.file,
        }
    }
}

/// A Downward API file and what it held when last read.
#[derive(Debug, Clone)]
pub struct PodInfoFile {
    path: PathBuf,
    values: Fields,
    modified: Option<SystemTime>,
    checked: Option<Instant>,
}

impl PodInfoFile {
    fn new(path: PathBuf) -> Self {
        PodInfoFile {
            path,
            values: Fields::new(),
            modified: None,
            checked: None,
        }
    }

    /// Re-reads the file if it changed and was not checked within [`RECHECK`].
    fn refresh(&mut self, now: Instant) {
        if self
            .checked
            .is_some_and(|c| now.duration_since(c) < RECHECK)
        {
            return;
        }
        self.checked = Some(now);
        let modified = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        if modified.is_some() && modified == self.modified {
            return;
        }
        self.modified = modified;
        match std::fs::read_to_string(&self.path) {
            Ok(text) => self.values = parse_podinfo(&text),
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot read Downward API file")
            }
        }
    }
}

/// Parses the Downward API format: one `key="value"` per line, the value quoted with escapes.
pub fn parse_podinfo(text: &str) -> Fields {
    let mut out = Fields::new();
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let value =
            serde_json::from_str::<String>(v).unwrap_or_else(|_| v.trim_matches('"').to_string());
        out.insert(k.trim().to_string(), value.into());
    }
    out
}

#[derive(Debug, Clone)]
pub struct Enrich {
    pod: Fields,
    labels: Option<PodInfoFile>,
    annotations: Option<PodInfoFile>,
    file: bool,
}

impl Enrich {
    /// The fields this enrichment sets.
    pub fn field_names(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if !self.pod.is_empty() || self.labels.is_some() || self.annotations.is_some() {
            out.push("kubernetes");
        }
        if self.file {
            out.push("file");
        }
        out
    }

    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.pod.is_empty() {
            parts.push(format!(
                "pod ({})",
                self.pod.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        if let Some(l) = &self.labels {
            parts.push(format!("labels from {}", l.path.display()));
        }
        if let Some(a) = &self.annotations {
            parts.push(format!("annotations from {}", a.path.display()));
        }
        if self.file {
            parts.push("file".into());
        }
        parts.join(", ")
    }
}

impl Transform for Enrich {
    fn process(&mut self, batch: &mut Batch, _stats: &StreamStats) {
        let now = Instant::now();
        let mut k8s = self.pod.clone();
        for (name, file) in [
            ("labels", &mut self.labels),
            ("annotations", &mut self.annotations),
        ] {
            if let Some(f) = file {
                f.refresh(now);
                k8s.insert(name.into(), serde_json::Value::Object(f.values.clone()));
            }
        }
        // Serialised once per batch.
        let k8s = (!k8s.is_empty()).then(|| serde_json::Value::Object(k8s).to_string());
        let file = self
            .file
            .then(|| batch.source().path.to_string_lossy().into_owned());
        // Kept once for the batch; sinks write them into each record.
        let mut w = batch.fields_mut().shared_writer();
        if let Some(k) = &k8s {
            w.value("kubernetes", Value::Json(k));
        }
        if let Some(p) = &file {
            w.text("file", p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_downward_api_format() {
        let f = parse_podinfo(
            "app=\"web\"\npod-template-hash=\"5d9c\"\nnote=\"a \\\"quoted\\\" value\\nwith a newline\"\nbroken\n",
        );
        assert_eq!(f["app"], "web");
        assert_eq!(f["pod-template-hash"], "5d9c");
        assert_eq!(f["note"], "a \"quoted\" value\nwith a newline");
        assert_eq!(f.len(), 3);
    }

    #[test]
    fn rereads_a_changed_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("labels");
        std::fs::write(&p, "app=\"v1\"\n").unwrap();
        let mut f = PodInfoFile::new(p.clone());
        let t0 = Instant::now();
        f.refresh(t0);
        assert_eq!(f.values["app"], "v1");
        std::fs::write(&p, "app=\"v2\"\n").unwrap();
        let later = SystemTime::now() + Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(later)
            .unwrap();
        f.refresh(t0 + Duration::from_secs(1));
        assert_eq!(f.values["app"], "v1", "not re-checked before RECHECK");
        f.refresh(t0 + RECHECK);
        assert_eq!(f.values["app"], "v2");
    }
}
