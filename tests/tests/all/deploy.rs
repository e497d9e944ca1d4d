//! What deploy/ ships, checked as far as this machine allows: the Kubernetes manifests
//! parse and carry a valid config whose admin port the probes use, the systemd unit and
//! Nomad job name real flags, and every metric the Grafana dashboard queries is one the
//! node exports.

use breakwater_tests as support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn kubernetes_manifests_parse_and_carry_a_valid_config() {
    let text = std::fs::read_to_string(repo().join("deploy/kubernetes/breakwater.yaml")).unwrap();
    let docs: Vec<serde_json::Value> = text
        .split("\n---\n")
        .map(|d| serde_saphyr::from_str(d).unwrap_or_else(|e| panic!("{e}\n{d}")))
        .collect();
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["Namespace", "ConfigMap", "DaemonSet", "Service"]);

    let config = docs[1]["data"]["breakwater.yaml"].as_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("breakwater.yaml");
    std::fs::write(&path, config).unwrap();
    let out = support::node::cli("check", &path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let pod = &docs[2]["spec"]["template"];
    let container = &pod["spec"]["containers"][0];
    // The init container checks the config and compiles into the cache the server reads.
    let init = &pod["spec"]["initContainers"][0];
    assert_eq!(init["args"][0], "check");
    let mounted = |c: &serde_json::Value| {
        c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["mountPath"] == "/var/cache/breakwater")
    };
    assert!(
        config.contains("cache_dir: /var/cache/breakwater"),
        "{config}"
    );
    assert!(
        mounted(init) && mounted(container),
        "the compile cache is shared"
    );
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    let admin_port = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "admin")
        .unwrap()["containerPort"]
        .as_u64()
        .unwrap();
    assert!(
        config.contains(&format!(":{admin_port}\"")),
        "admin port {admin_port} not in config"
    );
    assert_eq!(
        pod["metadata"]["annotations"]["prometheus.io/port"],
        admin_port.to_string()
    );
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args, ["run", "--config", "/etc/breakwater/breakwater.yaml"]);
}

#[test]
fn service_definitions_use_real_commands() {
    let unit = std::fs::read_to_string(repo().join("deploy/systemd/breakwater.service")).unwrap();
    assert!(unit.contains("Type=notify"));
    assert!(unit.contains("run --config"));
    let nomad = std::fs::read_to_string(repo().join("deploy/nomad/breakwater.nomad.hcl")).unwrap();
    assert!(nomad.contains(r#"args    = ["run", "--config""#));
    assert!(nomad.contains(r#"change_signal = "SIGHUP""#));
    assert!(nomad.contains(r#"type = "system""#));
}

/// The Helm chart, rendered (see support/helm.rs) as a DaemonSet on host ports (the default)
/// and as a Deployment behind its Service: every document parses, the embedded config is one
/// the node accepts, probes and scrape annotations point at the admin listener, and a config
/// change changes the checksum that rolls the pods.
#[test]
fn the_helm_chart_renders_valid_manifests() {
    let chart = repo().join("deploy/helm/breakwater");
    let docs = support::helm::render(&chart, "", "edge");
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["ConfigMap", "Service", "DaemonSet"]);
    for d in &docs {
        assert_eq!(d["metadata"]["name"], "edge-breakwater");
        assert_eq!(
            d["metadata"]["labels"]["app.kubernetes.io/instance"],
            "edge"
        );
    }

    // The config the chart ships is one the node accepts.
    let config = docs[0]["data"]["breakwater.yaml"].as_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("edge.yaml"), config).unwrap();
    let out = support::node::cli("check", &dir.path().join("edge.yaml"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let ds = &docs[2];
    let pod = &ds["spec"]["template"];
    assert_eq!(
        ds["spec"]["selector"]["matchLabels"], pod["metadata"]["labels"],
        "the selector selects the pods"
    );
    let annotations = &pod["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], "9901");
    let container = &pod["spec"]["containers"][0];
    assert_eq!(container["args"][0], "run");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    let ports = container["ports"].as_array().unwrap();
    let port = |name: &str| ports.iter().find(|p| p["name"] == name).unwrap().clone();
    assert_eq!(
        (
            port("http")["containerPort"].as_u64(),
            port("http")["hostPort"].as_u64()
        ),
        (Some(8080), Some(80))
    );
    assert_eq!(
        port("admin")["hostPort"],
        serde_json::Value::Null,
        "admin stays in the pod"
    );
    assert_eq!(container["resources"]["limits"]["memory"], "1Gi");
    assert_eq!(
        pod["spec"]["volumes"][0]["configMap"]["name"],
        "edge-breakwater"
    );

    // A Deployment: replicas, no host ports, a surge roll-out; the Service targets named ports.
    let docs = support::helm::render(
        &chart,
        "kind: Deployment\nreplicas: 3\nconfig: |\n  listeners: [{ name: web, address: \"0.0.0.0:8080\" }]\n  admin: { address: \"0.0.0.0:9901\" }\n  routes: [{ respond: { body: hi } }]\n",
        "edge",
    );
    let deploy = docs
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("a Deployment");
    assert_eq!(deploy["spec"]["replicas"], 3);
    assert_eq!(
        deploy["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
        0
    );
    let ports = deploy["spec"]["template"]["spec"]["containers"][0]["ports"]
        .as_array()
        .unwrap();
    assert!(
        ports.iter().all(|p| p.get("hostPort").is_none()),
        "{ports:?}"
    );
    let checksum = |docs: &[serde_json::Value]| {
        docs.iter()
            .find(|d| d["kind"] == "Deployment" || d["kind"] == "DaemonSet")
            .unwrap()["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
            .clone()
    };
    assert_ne!(
        checksum(&docs),
        checksum(&support::helm::render(&chart, "", "edge"))
    );
    let service = docs.iter().find(|d| d["kind"] == "Service").unwrap();
    // An override of one nested value keeps its siblings (Helm merges values at every depth).
    let docs = support::helm::render(&chart, "ports: { http: { hostPort: 8081 } }", "edge");
    let ports = docs[2]["spec"]["template"]["spec"]["containers"][0]["ports"].clone();
    let port = |name: &str| {
        let p = ports.as_array().unwrap().iter().find(|p| p["name"] == name);
        p.map(|p| (p["containerPort"].as_u64(), p["hostPort"].as_u64()))
    };
    assert_eq!(port("http"), Some((Some(8080), Some(8081))), "{ports}");
    assert_eq!(port("https"), Some((Some(8443), Some(443))), "{ports}");
    assert!(service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["targetPort"] == "admin"));
}

/// The bare-metal installer, into a temporary root with the binary the tests built: every
/// file lands where the unit expects it, the installed binary accepts the installed config,
/// and a second run keeps an operator's edited config.
#[test]
fn the_installer_lays_out_a_working_node() {
    let root = tempfile::tempdir().unwrap();
    let install = || {
        std::process::Command::new("bash")
            .arg(repo().join("deploy/install.sh"))
            .args(["--binary"])
            .arg(support::node::binary())
            .arg("--root")
            .arg(root.path())
            .output()
            .unwrap()
    };
    let run = || {
        let out = install();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run();
    let r = root.path();
    for path in [
        "usr/local/bin/breakwater",
        "etc/breakwater/breakwater.yaml",
        "etc/systemd/system/breakwater.service",
        "etc/logrotate.d/breakwater",
        "var/lib/breakwater",
        "var/log/breakwater",
    ] {
        assert!(r.join(path).exists(), "{path} missing");
    }
    let unit = std::fs::read_to_string(r.join("etc/systemd/system/breakwater.service")).unwrap();
    assert!(unit.contains(
        "ExecStart=/usr/local/bin/breakwater run --config /etc/breakwater/breakwater.yaml"
    ));
    let check = std::process::Command::new(r.join("usr/local/bin/breakwater"))
        .args(["check", "--config"])
        .arg(r.join("etc/breakwater/breakwater.yaml"))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    let config = r.join("etc/breakwater/breakwater.yaml");
    let edited = format!(
        "{}
# edited by the operator
",
        std::fs::read_to_string(&config).unwrap()
    );
    std::fs::write(&config, &edited).unwrap();
    run();
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        edited,
        "config kept"
    );

    // A config the binary would refuse stops the installer before it replaces anything: the
    // error names the file, line and column, and the installed binary is the one from before.
    use std::os::unix::fs::MetadataExt;
    let installed = r.join("usr/local/bin/breakwater");
    let inode = std::fs::metadata(&installed).unwrap().ino();
    let bad = "listeners: [{ name: web, address: \"127.0.0.1:0\" }]\nroutes:\n  - { respond: { status: 1000 } }\n";
    std::fs::write(&config, bad).unwrap();
    let out = install();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "installed over a bad config");
    assert!(stderr.contains("breakwater.yaml:3:"), "{stderr}");
    assert_eq!(
        std::fs::metadata(&installed).unwrap().ino(),
        inode,
        "binary replaced"
    );
}

/// Metric names declared in proxy/src/ops/metrics.rs, with the registry's prefix.
fn declared_metrics() -> BTreeSet<String> {
    let src = std::fs::read_to_string(repo().join("proxy/src/ops/metrics.rs")).unwrap();
    let mut names = BTreeSet::new();
    for piece in src.split('"').skip(1).step_by(2) {
        if !piece.is_empty() && piece.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            names.insert(format!("breakwater_{piece}"));
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn the_grafana_dashboard_queries_metrics_the_node_exports() {
    let text =
        std::fs::read_to_string(repo().join("deploy/grafana/breakwater-dashboard.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut used = BTreeSet::new();
    for panel in dash["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for (i, _) in expr.match_indices("breakwater_") {
                let name: String = expr[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                used.insert(name.trim_end_matches("_bucket").to_string());
            }
        }
    }
    assert!(used.len() >= 15, "{used:?}");
    let declared = declared_metrics();
    let missing: Vec<&String> = used.iter().filter(|n| !declared.contains(*n)).collect();
    assert!(missing.is_empty(), "not exported: {missing:?}");

    // And the common ones show up in a real scrape after real traffic.
    let node = support::Node::demo();
    let client = support::Client::h1();
    let (web, admin) = (node.addr("web"), node.addr("admin"));
    for path in ["/", "/origin/a", "/origin/a", "/hello"] {
        client.get(web, "localhost", path).await;
    }
    let scrape = client.get(admin, "localhost", "/metrics").await.text();
    for name in [
        "breakwater_requests_total",
        "breakwater_request_duration_seconds",
        "breakwater_cache_responses_total",
        "breakwater_component_invocations_total",
        "breakwater_cache_bytes",
    ] {
        assert!(used.contains(name), "dashboard lacks {name}");
        assert!(scrape.contains(name), "{name} not scraped:\n{scrape}");
    }
}
