//! `tailcar inject`: adds tailcar sidecars to Kubernetes workloads, like `linkerd inject`.
//!
//! Reads YAML (one or more documents: Pods, Deployments, StatefulSets, DaemonSets, ReplicaSets,
//! Jobs, CronJobs, and `List`s of them; anything else passes through unchanged) and, for each
//! `--stream NAME=PATH`, adds a native sidecar (an init container with `restartPolicy: Always`)
//! named `NAME-log` that runs `tailcar tail` on PATH, so `kubectl logs POD -c NAME-log` shows
//! that file alone. The sidecar mounts the volume the application writes PATH to (found from the
//! pod's own volume mounts) and keeps its checkpoints on it. Running it again replaces the
//! sidecars it added, so the output is the same. A PATH on no volume of the pod is refused: a
//! sidecar cannot see a file in another container's root filesystem.

use std::path::{Component, Path, PathBuf};

use serde_yaml::{Mapping, Value};

/// What to inject.
#[derive(Debug, Clone)]
pub struct InjectOptions {
    /// `(stream name, file path)`.
    pub streams: Vec<(String, PathBuf)>,
    pub image: String,
    /// Also serve `/readyz` for a startup probe (ports from this one up, one per stream).
    pub admin_port: Option<u16>,
}

/// The default image.
pub const IMAGE: &str = "ghcr.io/tailcar/tailcar:0.1.0";

/// Parses `NAME=PATH`.
pub fn parse_stream(s: &str) -> Result<(String, PathBuf), String> {
    let (name, path) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}`: expected NAME=PATH"))?;
    let valid = !name.is_empty()
        && name.len() <= 59
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !valid {
        return Err(format!(
            "`{name}`: a stream name must be lower-case letters, digits and `-` (it names the container `{name}-log`)"
        ));
    }
    let path = PathBuf::from(path);
    if !path.is_absolute() || path.file_name().is_none() {
        return Err(format!(
            "`{}`: the path must be an absolute file path",
            path.display()
        ));
    }
    Ok((name.to_string(), path))
}

/// Injects into every workload of `input`; the error names the resource and the reason.
pub fn inject(input: &str, opts: &InjectOptions) -> Result<String, String> {
    if opts.streams.is_empty() {
        return Err("nothing to inject: give at least one --stream NAME=PATH".into());
    }
    let mut out = String::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(input).enumerate() {
        let mut value =
            Value::deserialize(doc).map_err(|e| format!("document {}: not YAML: {e}", i + 1))?;
        if value.is_null() {
            continue;
        }
        inject_value(&mut value, opts)?;
        if !out.is_empty() {
            out.push_str("---\n");
        }
        out.push_str(&serde_yaml::to_string(&value).map_err(|e| format!("writing YAML: {e}"))?);
    }
    if out.is_empty() {
        return Err("no Kubernetes resource in the input".into());
    }
    Ok(out)
}

use serde::Deserialize;

fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_mapping()?.get(key)
}

fn get_mut<'a>(v: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    v.as_mapping_mut()?.get_mut(key)
}

fn inject_value(value: &mut Value, opts: &InjectOptions) -> Result<(), String> {
    let kind = get(value, "kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let name = get(value, "metadata")
        .and_then(|m| get(m, "name"))
        .and_then(Value::as_str)
        .unwrap_or("(unnamed)")
        .to_string();
    let path: &[&str] = match kind.as_str() {
        "List" => {
            if let Some(Value::Sequence(items)) = get_mut(value, "items") {
                for item in items {
                    inject_value(item, opts)?;
                }
            }
            return Ok(());
        }
        "Pod" => &["spec"],
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
            &["spec", "template", "spec"]
        }
        "CronJob" => &["spec", "jobTemplate", "spec", "template", "spec"],
        _ => return Ok(()),
    };
    let mut spec = &mut *value;
    for key in path {
        spec = get_mut(spec, key)
            .ok_or_else(|| format!("{kind}/{name}: no `{}` in it", path.join(".")))?;
    }
    inject_pod(spec, opts).map_err(|e| format!("{kind}/{name}: {e}"))
}

/// `(volume, mount path)` of every mount of the pod's own containers.
fn mounts(spec: &Value, ours: &[String]) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for list in ["containers", "initContainers"] {
        let Some(Value::Sequence(containers)) = get(spec, list) else {
            continue;
        };
        for c in containers {
            let cname = get(c, "name").and_then(Value::as_str).unwrap_or("");
            if ours.iter().any(|o| o == cname) {
                continue;
            }
            let Some(Value::Sequence(vm)) = get(c, "volumeMounts") else {
                continue;
            };
            for m in vm {
                // A subPath mount shows only part of the volume: it cannot be followed here.
                if get(m, "subPath").is_some() || get(m, "subPathExpr").is_some() {
                    continue;
                }
                if let (Some(v), Some(p)) = (
                    get(m, "name").and_then(Value::as_str),
                    get(m, "mountPath").and_then(Value::as_str),
                ) && !out
                    .iter()
                    .any(|(ov, op): &(String, PathBuf)| ov == v && op == Path::new(p))
                {
                    out.push((v.to_string(), PathBuf::from(p)));
                }
            }
        }
    }
    out
}

/// The mount (longest mount path) holding `file`.
fn mount_for<'a>(mounts: &'a [(String, PathBuf)], file: &Path) -> Option<&'a (String, PathBuf)> {
    let normal = |p: &Path| -> Vec<String> {
        p.components()
            .filter_map(|c| match c {
                Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect()
    };
    let file = normal(file);
    mounts
        .iter()
        .filter(|(_, m)| {
            let m = normal(m);
            m.len() < file.len() && file.starts_with(&m)
        })
        .max_by_key(|(_, m)| normal(m).len())
}

fn yaml(s: &str) -> Value {
    serde_yaml::from_str(s).expect("static YAML")
}

fn inject_pod(spec: &mut Value, opts: &InjectOptions) -> Result<(), String> {
    let ours: Vec<String> = opts
        .streams
        .iter()
        .map(|(n, _)| format!("{n}-log"))
        .collect();
    let mounts = mounts(spec, &ours);
    let mut sidecars = Vec::new();
    for (i, (stream, file)) in opts.streams.iter().enumerate() {
        let Some((volume, mount_path)) = mount_for(&mounts, file) else {
            let seen: Vec<String> = mounts
                .iter()
                .map(|(v, p)| format!("{} ({v})", p.display()))
                .collect();
            return Err(format!(
                "`{}` (stream {stream}) is not on any volume of the pod, so no sidecar can read it; its containers mount: {}",
                file.display(),
                if seen.is_empty() {
                    "nothing".to_string()
                } else {
                    seen.join(", ")
                }
            ));
        };
        let checkpoints = mount_path.join(".tailcar").join(stream);
        let mut args = vec![
            Value::from("tail"),
            Value::from("--checkpoint-dir"),
            Value::from(checkpoints.display().to_string()),
        ];
        let mut probe = None;
        if let Some(port) = opts.admin_port {
            let port = port + i as u16;
            args.push(Value::from("--admin"));
            args.push(Value::from(format!("0.0.0.0:{port}")));
            probe = Some(yaml(&format!(
                "httpGet: {{ path: /readyz, port: {port} }}\nperiodSeconds: 1\nfailureThreshold: 30"
            )));
        }
        args.push(Value::from(file.display().to_string()));
        let mut c = Mapping::new();
        c.insert("name".into(), Value::from(format!("{stream}-log")));
        c.insert("image".into(), Value::from(opts.image.clone()));
        c.insert("restartPolicy".into(), "Always".into());
        c.insert("args".into(), Value::Sequence(args));
        if let Some(p) = probe {
            c.insert("startupProbe".into(), p);
        }
        c.insert(
            "resources".into(),
            yaml("requests: { cpu: 5m, memory: 16Mi }\nlimits: { cpu: 200m, memory: 64Mi }"),
        );
        c.insert(
            "securityContext".into(),
            yaml("runAsNonRoot: true\nrunAsUser: 65532\nreadOnlyRootFilesystem: true\nallowPrivilegeEscalation: false\ncapabilities: { drop: [ALL] }"),
        );
        let mut mount = Mapping::new();
        mount.insert("name".into(), Value::from(volume.clone()));
        mount.insert(
            "mountPath".into(),
            Value::from(mount_path.display().to_string()),
        );
        c.insert(
            "volumeMounts".into(),
            Value::Sequence(vec![Value::Mapping(mount)]),
        );
        sidecars.push(Value::Mapping(c));
    }
    let spec = spec
        .as_mapping_mut()
        .ok_or("the pod spec is not a mapping")?;
    let init = spec
        .entry("initContainers".into())
        .or_insert_with(|| Value::Sequence(Vec::new()));
    let Value::Sequence(init) = init else {
        return Err("initContainers is not a list".into());
    };
    // Replace sidecars injected before (same names), keep everything else in place.
    init.retain(|c| {
        let n = get(c, "name").and_then(Value::as_str).unwrap_or("");
        !ours.iter().any(|o| o == n)
    });
    init.extend(sidecars);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(streams: &[&str]) -> InjectOptions {
        InjectOptions {
            streams: streams.iter().map(|s| parse_stream(s).unwrap()).collect(),
            image: IMAGE.into(),
            admin_port: None,
        }
    }

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: { name: p }\nspec:\n  containers:\n    - name: app\n      image: app\n      volumeMounts:\n        - { name: logs, mountPath: /var/log/app }\n        - { name: data, mountPath: /var }\n  volumes: [{ name: logs, emptyDir: {} }, { name: data, emptyDir: {} }]\n";

    #[test]
    fn picks_the_deepest_mount_and_is_idempotent() {
        let once = inject(POD, &opts(&["access=/var/log/app/access.log"])).unwrap();
        let v: Value = serde_yaml::from_str(&once).unwrap();
        let c = &v["spec"]["initContainers"][0];
        assert_eq!(c["name"], "access-log");
        assert_eq!(c["restartPolicy"], "Always");
        assert_eq!(c["volumeMounts"][0]["name"], "logs");
        assert_eq!(c["args"][2], "/var/log/app/.tailcar/access");
        assert_eq!(c["args"][3], "/var/log/app/access.log");
        let twice = inject(&once, &opts(&["access=/var/log/app/access.log"])).unwrap();
        assert_eq!(once, twice);
    }

    #[test]
    fn refuses_paths_on_no_volume_and_bad_names() {
        let err = inject(POD, &opts(&["x=/tmp/x.log"])).unwrap_err();
        assert_eq!(
            err,
            "Pod/p: `/tmp/x.log` (stream x) is not on any volume of the pod, so no sidecar can read it; its containers mount: /var/log/app (logs), /var (data)"
        );
        assert!(parse_stream("Access=/a.log").is_err());
        assert!(parse_stream("a=relative.log").is_err());
        assert!(parse_stream("noequals").is_err());
    }
}
