//! The command line itself. (Having an integration test also makes `cargo test --workspace`
//! build the `breakwater` binary with the workspace's test features, which the end-to-end
//! tests in `tests/` start: one build of the dependencies instead of two.)

use std::process::Command;

#[test]
fn help_lists_the_commands() {
    let out = Command::new(env!("CARGO_BIN_EXE_breakwater"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("run") && text.contains("check"), "{text}");
}

#[test]
fn check_without_a_config_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_breakwater"))
        .arg("check")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "clap's usage error");
}

/// `check` compiles every component as its kind into `wasm.cache_dir`, so that `run` started
/// after it (systemd's ExecStartPre) loads compiled code instead of compiling in the serving
/// process; a second `check` finds everything there.
#[test]
fn check_fills_the_compile_cache_that_run_reads() {
    let bin = env!("CARGO_BIN_EXE_breakwater");
    let dir = std::env::temp_dir().join(format!("breakwater-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let made = Command::new(bin)
        .arg("demo-components")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let cache = dir.join("cache");
    let config = dir.join("edge.yaml");
    std::fs::write(
        &config,
        format!(
            "listeners: [{{ name: web, address: \"127.0.0.1:0\" }}]
wasm: {{ cache_dir: {cache} }}
components:
  f: {{ path: {dir}/demo-filter.wasm }}
  h: {{ path: {dir}/hello-handler.wasm, kind: handler }}
routes:
  - {{ match: {{ path: /hello }}, handler: h }}
  - {{ filters: [f], respond: {{ body: ok }} }}
",
            cache = cache.display(),
            dir = dir.display()
        ),
    )
    .unwrap();
    let compiled = || {
        std::fs::read_dir(&cache)
            .map(|d| d.filter_map(Result::ok).count())
            .unwrap_or(0)
    };
    let check = || {
        Command::new(bin)
            .arg("check")
            .arg("-c")
            .arg(&config)
            .output()
            .unwrap()
    };
    let first = check();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let stored = compiled();
    assert!(
        stored >= 2,
        "one compiled file per component at least, found {stored}"
    );
    let second = check();
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert_eq!(compiled(), stored, "the second check compiled again");
    let _ = std::fs::remove_dir_all(&dir);
}
