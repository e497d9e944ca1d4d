//! TLS termination: a certificate per SNI name (exact and wildcard), HTTP/2 by ALPN,
//! unknown names refused with an alert, and bad certificate files refused at load.

use breakwater_tests as support;

use support::certs::Ca;
use support::client::tls_get;
use support::{Node, Origin};

fn tls_config(origin: &Origin) -> String {
    format!(
        r#"
listeners:
  - name: tls
    address: 127.0.0.1:0
    protocol: https
    certificates:
      - {{ names: [a.test], cert: "{{DIR}}/a.pem", key: "{{DIR}}/a.key" }}
      - {{ names: ["*.wild.test"], cert: "{{DIR}}/wild.pem", key: "{{DIR}}/wild.key" }}
pools: {{ p: {{ endpoints: ["{}"] }} }}
routes: [{{ pool: p }}]
"#,
        origin.addr
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn certificates_are_chosen_by_sni_and_h2_is_negotiated() {
    let origin = Origin::echo().await;
    let ca = Ca::new();
    let dir = tempfile::tempdir().unwrap();
    ca.leaf(dir.path(), "a", &["a.test"]);
    ca.leaf(dir.path(), "wild", &["*.wild.test"]);
    let node = Node::start_in(dir, &tls_config(&origin), &[]);
    let addr = node.addr("tls");

    // The client verifies the certificate against the name: success means the right one.
    let r = tls_get(addr, "a.test", ca.roots(), false, "/one")
        .await
        .unwrap();
    assert_eq!((r.status, r.version), (200, http::Version::HTTP_11));
    let r = tls_get(addr, "x.wild.test", ca.roots(), true, "/two")
        .await
        .unwrap();
    assert_eq!((r.status, r.version), (200, http::Version::HTTP_2));
    assert_eq!(r.text(), "origin /two");
    let seen = origin.seen();
    assert!(seen
        .iter()
        .all(|s| s.header("x-forwarded-proto").as_deref() == Some("https")));

    // A name no certificate covers: the handshake fails with an alert.
    let err = tls_get(addr, "unknown.test", ca.roots(), false, "/")
        .await
        .unwrap_err();
    assert!(
        err.to_lowercase().contains("alert") || err.contains("handshake"),
        "{err}"
    );
    // The wildcard covers one label only on the left, not the bare domain.
    assert!(tls_get(addr, "wild.test", ca.roots(), false, "/")
        .await
        .is_err());
    assert_eq!(origin.hits(), 2);
}

#[test]
fn bad_certificate_files_are_refused_at_load_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    ca.leaf(dir.path(), "a", &["a.test"]);
    std::fs::write(dir.path().join("wild.pem"), "not a certificate").unwrap();
    std::fs::write(dir.path().join("wild.key"), "not a key").unwrap();
    let yaml = r#"
listeners:
  - name: tls
    address: 127.0.0.1:0
    protocol: https
    certificates:
      - { names: [a.test], cert: a.pem, key: a.key }
      - { names: ["*.wild.test"], cert: wild.pem, key: wild.key }
routes: [{ respond: { body: hi } }]
"#;
    let config = dir.path().join("edge.yaml");
    std::fs::write(&config, yaml).unwrap();

    let check = support::node::cli("check", &config);
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(!check.status.success());
    assert!(
        stderr.contains("edge.yaml:8:"),
        "names the config line: {stderr}"
    );
    assert!(stderr.contains("wild.pem"), "names the file: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let run = support::node::cli("run", &config);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("wild.pem") && !stderr.contains("panicked"),
        "{stderr}"
    );

    // A key that does not belong to the certificate.
    ca.leaf(dir.path(), "b", &["b.test"]);
    std::fs::copy(dir.path().join("a.pem"), dir.path().join("wild.pem")).unwrap();
    std::fs::copy(dir.path().join("b.key"), dir.path().join("wild.key")).unwrap();
    let check = support::node::cli("check", &config);
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(!check.status.success(), "mismatched key accepted");
    assert!(stderr.contains("wild.key"), "{stderr}");
}
