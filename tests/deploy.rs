//! Deployment: every manifest in `deploy/kubernetes` and every `tailcar inject` output is
//! validated offline against the Kubernetes schemas (`kubernetes-validate --strict`, installed
//! by scripts/test.sh from PyPI) and parsed back; the manifests' tailcar command lines run as
//! written (paths moved into a temp dir), from a read-only working directory, as in a container
//! with `readOnlyRootFilesystem`.

mod support;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `kubernetes-validate --strict FILE`: `(ok, output)`.
fn validate(file: &Path) -> (bool, String) {
    let out = Command::new("python3")
        .args(["-m", "kubernetes_validate", "--strict", "-k", "1.31.0"])
        .arg(file)
        .output()
        .expect("running python3 -m kubernetes_validate");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("No module named"),
        "kubernetes-validate is not installed: run scripts/test.sh, which installs it"
    );
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success() && !text.contains("ERROR"), text)
}

fn inject(args: &[&str], stdin: Option<&str>) -> (Option<i32>, String, String) {
    let mut child = Command::new(BIN)
        .arg("inject")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        // A refused command line exits before reading stdin: a broken pipe is not an error here.
        let _ = input.write_all(text.as_bytes());
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn docs(text: &str) -> Vec<serde_yaml::Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}

#[test]
fn the_manifests_validate_against_the_kubernetes_schemas() {
    let dir = repo().join("deploy/kubernetes");
    let mut n = 0;
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let (ok, out) = validate(&path);
            assert!(ok, "{}:\n{out}", path.display());
            assert!(out.contains("passed"), "{out}");
            n += 1;
        }
    }
    assert!(n >= 2, "manifests found: {n}");
    // The validator does refuse what is wrong.
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.yaml");
    fs::write(
        &bad,
        fs::read_to_string(dir.join("application-sidecars.yaml"))
            .unwrap()
            .replacen(
                "restartPolicy: Always",
                "restartPolicy: Always\n      restartPolicyy: x",
                1,
            ),
    )
    .unwrap();
    assert!(!validate(&bad).0);
}

#[test]
fn inject_adds_a_validated_sidecar_to_every_kind_of_workload() {
    let fixture = repo().join("tests/fixtures/k8s/workloads.yaml");
    let args = [
        "--stream",
        "access=/var/log/app/access.log",
        "--stream",
        "error=/var/log/app/error.log",
        "--admin-port",
        "9095",
        fixture.to_str().unwrap(),
    ];
    let (code, out, err) = inject(&args, None);
    assert_eq!(code, Some(0), "{err}");
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("injected.yaml");
    fs::write(&file, &out).unwrap();
    let (ok, report) = validate(&file);
    assert!(ok, "{report}\n{out}");

    let docs = docs(&out);
    assert_eq!(docs.len(), 6);
    let pod_specs = [
        &docs[0]["spec"]["template"]["spec"],
        &docs[1]["spec"]["template"]["spec"],
        &docs[2]["spec"]["template"]["spec"],
        &docs[3]["spec"]["template"]["spec"],
        &docs[4]["spec"]["jobTemplate"]["spec"]["template"]["spec"],
    ];
    for spec in pod_specs {
        let init = spec["initContainers"].as_sequence().unwrap();
        let names: Vec<&str> = init.iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["access-log", "error-log"]);
        let access = &init[0];
        assert_eq!(access["restartPolicy"], "Always");
        assert_eq!(access["image"], "ghcr.io/tailcar/tailcar:0.1.0");
        let args: Vec<&str> = access["args"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(
            args,
            [
                "tail",
                "--checkpoint-dir",
                "/var/log/app/.tailcar/access",
                "--admin",
                "0.0.0.0:9095",
                "/var/log/app/access.log"
            ]
        );
        assert_eq!(init[1]["startupProbe"]["httpGet"]["port"], 9096);
        assert_eq!(access["volumeMounts"][0]["name"], "logs");
        assert_eq!(access["volumeMounts"][0]["mountPath"], "/var/log/app");
        assert_eq!(access["securityContext"]["readOnlyRootFilesystem"], true);
        // The application's own container is untouched.
        assert_eq!(spec["containers"].as_sequence().unwrap().len(), 1);
    }
    assert_eq!(docs[5]["kind"], "ConfigMap");
    assert!(docs[5].get("spec").is_none());

    // Injecting again changes nothing.
    let (code, again, _) = inject(&args[..6], Some(&out));
    assert_eq!(code, Some(0));
    let (code, again_stdin, _) = inject(&[&args[..6], &["-"]].concat(), Some(&out));
    assert_eq!(code, Some(0));
    assert_eq!(again, out);
    assert_eq!(again_stdin, out);
}

#[test]
fn inject_reads_stdin_and_refuses_a_path_on_no_volume() {
    let pod = fs::read_to_string(repo().join("tests/fixtures/k8s/pod.yaml")).unwrap();
    let (code, out, err) = inject(&["--stream", "app=/var/log/app/app.log", "-"], Some(&pod));
    assert_eq!(code, Some(0), "{err}");
    let docs = docs(&out);
    assert_eq!(docs[0]["spec"]["initContainers"][0]["name"], "app-log");
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("pod.yaml"), &out).unwrap();
    assert!(validate(&tmp.path().join("pod.yaml")).0);

    let (code, out, err) = inject(&["--stream", "app=/srv/app.log"], Some(&pod));
    assert_eq!(code, Some(64));
    assert!(out.is_empty());
    assert_eq!(
        err,
        "tailcar: inject: Pod/single: `/srv/app.log` (stream app) is not on any volume of the pod, so no sidecar can read it; its containers mount: /var/log/app (logs), /etc/app (config)\n"
    );
    let (code, _, err) = inject(&["--stream", "App=/var/log/app/a.log"], Some(&pod));
    assert_eq!(code, Some(64), "{err}");
}

/// Makes `dir` read-only for the test's duration (restored on drop, so it can be removed).
struct ReadOnly(PathBuf);

impl ReadOnly {
    fn new(dir: &Path) -> Self {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o555)).unwrap();
        ReadOnly(dir.to_path_buf())
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = fs::set_permissions(&self.0, fs::Permissions::from_mode(0o755));
    }
}

#[test]
fn the_sidecar_command_lines_run_as_written_from_a_read_only_directory() {
    let manifest =
        fs::read_to_string(repo().join("deploy/kubernetes/application-sidecars.yaml")).unwrap();
    let pod = &docs(&manifest)[0];
    let tmp = tempfile::tempdir().unwrap();
    let varlog = tmp.path().join("varlog");
    fs::create_dir(&varlog).unwrap();
    let root = tmp.path().join("root");
    fs::create_dir(&root).unwrap();
    let _ro = ReadOnly::new(&root);
    let mut running = Vec::new();
    for c in pod["spec"]["initContainers"].as_sequence().unwrap() {
        let port = support::http_server::free_port().port();
        let args: Vec<String> = c["args"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|a| {
                a.as_str()
                    .unwrap()
                    .replace("/var/log", varlog.to_str().unwrap())
                    .replace(":9095", &format!(":{port}"))
                    .replace(":9096", &format!(":{port}"))
            })
            .collect();
        let file = PathBuf::from(args.last().unwrap());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let t = Tailcar::start(&root, &args);
        running.push((c["name"].as_str().unwrap().to_string(), t, file, port));
    }
    assert_eq!(running.len(), 2);
    for (name, t, file, port) in &mut running {
        append(file, name, 0..50);
        t.wait_lines(50, Duration::from_secs(10));
        let counts = seq_counts(&t.stdout(), name);
        assert_eq!(assert_all_arrived(&counts, 50), 0);
        let ready = wait_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", *port)).is_ok()
        });
        assert!(ready, "{name}: no admin endpoint\n{}", t.stderr());
    }
    for (_, t, _, _) in &mut running {
        t.stop();
    }
    // Checkpoints went to the volume, nothing to the read-only working directory.
    assert!(varlog.join(".tailcar/access/checkpoints.json").exists());
    assert_eq!(fs::read_dir(&root).unwrap().count(), 0);
}

#[test]
fn the_agent_configuration_and_its_plugins_load() {
    let manifest =
        fs::read_to_string(repo().join("deploy/kubernetes/application-agent.yaml")).unwrap();
    let docs = docs(&manifest);
    let config = docs[0]["data"]["tailcar.yaml"].as_str().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let plugins = plugin("nginx_parse").parent().unwrap().to_path_buf();
    let config = config
        .replace("/var/log", &d.display().to_string())
        .replace("/plugins/image", &plugins.display().to_string())
        .replace("/plugins/configmap", &plugins.display().to_string());
    fs::write(d.join("tailcar.yaml"), config).unwrap();
    let (code, out, err) = run_env(
        d,
        &["check", "--config", "tailcar.yaml"],
        &[
            ("POD_NAME", "application-agent"),
            ("POD_NAMESPACE", "default"),
            ("NODE_NAME", "node-1"),
            ("ES_PASSWORD", "secret"),
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains("plugin nginx_parse") && out.contains("plugin drop_healthchecks"),
        "{out}"
    );
    assert!(out.ends_with("configuration OK\n"), "{out}");
}

/// A strategic merge of `patch` into `base`, as Kustomize does it for these fields: mappings
/// merge key by key; the lists of containers, init containers and volumes merge by `name`;
/// other values are replaced.
fn strategic_merge(base: &mut serde_yaml::Value, patch: &serde_yaml::Value) {
    use serde_yaml::Value;
    match (base, patch) {
        (Value::Mapping(b), Value::Mapping(p)) => {
            for (k, pv) in p {
                let by_name = matches!(
                    k.as_str(),
                    Some("containers" | "initContainers" | "volumes")
                );
                match b.get_mut(k) {
                    Some(Value::Sequence(bl)) if by_name => {
                        for item in pv.as_sequence().unwrap() {
                            match bl.iter_mut().find(|e| e["name"] == item["name"]) {
                                Some(e) => strategic_merge(e, item),
                                None => bl.push(item.clone()),
                            }
                        }
                    }
                    Some(bv) => strategic_merge(bv, pv),
                    None => {
                        b.insert(k.clone(), pv.clone());
                    }
                }
            }
        }
        (b, p) => *b = p.clone(),
    }
}

#[test]
fn the_kustomize_component_adds_a_valid_sidecar_to_a_labelled_deployment() {
    let dir = repo().join("deploy/kubernetes/kustomize");
    let component: serde_yaml::Value = serde_yaml::from_str(
        &fs::read_to_string(dir.join("tailcar-sidecar/kustomization.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(component["kind"], "Component");
    let selector = component["patches"][0]["target"]["labelSelector"]
        .as_str()
        .unwrap();
    let (key, value) = selector.split_once('=').unwrap();
    let mut deployment: serde_yaml::Value =
        serde_yaml::from_str(&fs::read_to_string(dir.join("example/deployment.yaml")).unwrap())
            .unwrap();
    assert_eq!(
        deployment["metadata"]["labels"][key], value,
        "the example is selected"
    );
    let patch: serde_yaml::Value = serde_yaml::from_str(
        &fs::read_to_string(dir.join("tailcar-sidecar/sidecar.yaml")).unwrap(),
    )
    .unwrap();
    let name = deployment["metadata"]["name"].clone();
    strategic_merge(&mut deployment, &patch);
    deployment["metadata"]["name"] = name;
    let spec = &deployment["spec"]["template"]["spec"];
    assert_eq!(spec["containers"].as_sequence().unwrap().len(), 1);
    assert_eq!(spec["initContainers"][0]["name"], "tailcar");
    assert_eq!(spec["volumes"].as_sequence().unwrap().len(), 2);
    // The sidecar mounts the application's log volume where the application writes.
    assert_eq!(
        spec["initContainers"][0]["volumeMounts"][0],
        spec["containers"][0]["volumeMounts"][0]
    );

    let config_text = fs::read_to_string(dir.join("tailcar-sidecar/tailcar.yaml")).unwrap();
    let mut config_map = serde_yaml::Mapping::new();
    config_map.insert("apiVersion".into(), "v1".into());
    config_map.insert("kind".into(), "ConfigMap".into());
    config_map.insert(
        "metadata".into(),
        serde_yaml::from_str("{ name: tailcar }").unwrap(),
    );
    let mut data = serde_yaml::Mapping::new();
    data.insert("tailcar.yaml".into(), config_text.clone().into());
    config_map.insert("data".into(), data.into());
    let tmp = tempfile::tempdir().unwrap();
    let merged = tmp.path().join("merged.yaml");
    fs::write(
        &merged,
        serde_yaml::to_string(&deployment).unwrap()
            + "---\n"
            + &serde_yaml::to_string(&config_map).unwrap(),
    )
    .unwrap();
    let (ok, report) = validate(&merged);
    assert!(ok, "{report}");

    // The component's configuration is a valid tailcar configuration.
    let d = tmp.path();
    fs::write(
        d.join("tailcar.yaml"),
        config_text.replace("/var/log/app", &d.display().to_string()),
    )
    .unwrap();
    let (code, _, err) = run_env(
        d,
        &["check", "--config", "tailcar.yaml"],
        &[
            ("POD_NAME", "web-1"),
            ("POD_NAMESPACE", "default"),
            ("NODE_NAME", "n1"),
        ],
    );
    assert_eq!(code, Some(0), "{err}");
}
