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
