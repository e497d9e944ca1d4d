//! Golden tests: every `ui/invalid/*.yaml` is refused with exactly the text in its `.err`;
//! every `ui/valid/*.yaml` loads. `BLESS=1 cargo test -p breakwater-config` rewrites the `.err` files.

use std::path::{Path, PathBuf};

fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/ui")
        .join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no cases in {}", dir.display());
    files
}

/// Parse with the bare file name so the golden text does not depend on the checkout path.
fn parse(path: &Path) -> Result<breakwater_config::Config, breakwater_config::ConfigError> {
    let text = std::fs::read_to_string(path).unwrap();
    breakwater_config::parse(&text, Path::new(path.file_name().unwrap()))
}

#[test]
fn invalid_configs_are_refused_with_the_golden_message() {
    let bless = std::env::var_os("BLESS").is_some();
    let mut failures = Vec::new();
    for path in yaml_files("invalid") {
        let got = match parse(&path) {
            Ok(_) => "<accepted>".to_string(),
            Err(e) => format!("{e}\n"),
        };
        let golden = path.with_extension("err");
        if bless {
            std::fs::write(&golden, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_default();
        if got != want {
            failures.push(format!("{}:\n  want: {want}  got:  {got}", path.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn valid_configs_load() {
    for path in yaml_files("valid") {
        if let Err(e) = parse(&path) {
            panic!("{}: {e}", path.display());
        }
    }
}

#[test]
fn the_reference_config_in_deploy_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/breakwater.yaml");
    let config = breakwater_config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.pools.len(), 2);
    assert_eq!(config.routes.len(), 4);
}

#[test]
fn guests_can_be_kept_on_the_event_loops() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui/valid/wasm-offload-off.yaml");
    let config = parse(&path).unwrap();
    assert_eq!(config.wasm.offload_above, None);
    assert_eq!(config.wasm.guest_threads, Some(2));
    assert_eq!(
        config.wasm.guest_priority,
        breakwater_config::GuestPriority::Idle
    );
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui/valid/minimal.yaml");
    let config = parse(&path).unwrap();
    assert_eq!(
        config.wasm.offload_above,
        Some(std::time::Duration::from_micros(100))
    );
    assert_eq!(
        config.wasm.guest_priority,
        breakwater_config::GuestPriority::Low
    );
}

#[test]
fn warmup_takes_auto_off_or_a_request() {
    use breakwater_config::Warmup;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui/valid/warmup.yaml");
    let config = parse(&path).unwrap_or_else(|e| panic!("{e}"));
    let mut got: Vec<(String, Warmup)> = config
        .components
        .iter()
        .map(|c| (c.name.clone(), c.warmup.clone()))
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    let request = |method: http::Method, path: &str| Warmup::Request {
        method,
        path: path.into(),
    };
    assert_eq!(
        got,
        [
            ("a".to_string(), Warmup::Auto),
            ("b".to_string(), Warmup::Off),
            (
                "c".to_string(),
                request(http::Method::GET, "/health?probe=1")
            ),
            ("d".to_string(), request(http::Method::POST, "/warm")),
        ]
    );
}

/// The systemd unit runs the node with `ProtectSystem=strict`: everything is read-only but the
/// directories the unit declares (`RuntimeDirectory=`, `CacheDirectory=`, `LogsDirectory=`,
/// `StateDirectory=`, `ReadWritePaths=`). Every path the reference config writes, with the
/// access-log file it suggests, must be under one of them, or the node cannot write it there.
#[test]
fn the_systemd_sandbox_lets_the_node_write_every_path_the_reference_config_writes() {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    let unit = std::fs::read_to_string(deploy.join("systemd/breakwater.service")).unwrap();
    assert!(unit.lines().any(|l| l == "ProtectSystem=strict"));
    let mut writable: Vec<PathBuf> = Vec::new();
    for line in unit.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let base = match key {
            "RuntimeDirectory" => "/run",
            "CacheDirectory" => "/var/cache",
            "LogsDirectory" => "/var/log",
            "StateDirectory" => "/var/lib",
            "ReadWritePaths" => "/",
            _ => continue,
        };
        writable.extend(value.split_whitespace().map(|d| Path::new(base).join(d)));
    }
    let text = std::fs::read_to_string(deploy.join("breakwater.yaml")).unwrap();
    let suggested = "  # path: /var/log/breakwater/access.log";
    assert!(
        text.contains(suggested),
        "the config no longer suggests a log file"
    );
    let text = text.replace(suggested, "  path: /var/log/breakwater/access.log");
    let config = breakwater_config::parse(&text, Path::new("breakwater.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let written = [
        Some(config.server.pid_file.clone()),
        Some(config.server.upgrade_sock.clone()),
        config.wasm.cache_dir.clone(),
        config.access_log.path.clone(),
    ];
    for path in written.into_iter().flatten() {
        assert!(
            writable.iter().any(|w| path.starts_with(w)),
            "{} is read-only under the unit's sandbox (writable: {writable:?})",
            path.display()
        );
    }
}

/// An edge node's config may hold hundreds of thousands of routes: the YAML parser's
/// default budget (250 000 nodes, some 25 000 routes) must not refuse them.
#[test]
fn a_config_with_a_hundred_thousand_routes_loads() {
    let mut text = String::from(
        "listeners: [{ name: web, address: \"127.0.0.1:1\" }]\n\
         pools: { origin: { endpoints: [\"127.0.0.1:2\"] } }\nroutes:\n",
    );
    for h in 0..10_000 {
        for p in 0..10 {
            text += &format!(
                "  - {{ match: {{ hosts: [h{h}.test], path_prefix: /p{p}/ }}, pool: origin }}\n"
            );
        }
    }
    let config = breakwater_config::parse(&text, Path::new("many.yaml")).expect("loads");
    assert_eq!(config.routes.len(), 100_000);
}
