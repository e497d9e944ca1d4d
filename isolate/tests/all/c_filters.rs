//! The C example filters of isolate/examples, built from source by isolate/guests/build.sh
//! (clang + wasi-libc, wit-bindgen's C generator, the preview1 reactor adapter), through the
//! isolate API: what each one decides for the requests it is written for.

use breakwater_tests::wasm as support;

use breakwater_isolate::{
    Filter, FilterSettings, Headers, RequestDecision, Runtime, RuntimeSettings,
};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use support::{guest, request};

fn load(name: &str, config: &[(&str, &str)]) -> Filter {
    let rt: Arc<Runtime> = Runtime::new(RuntimeSettings::default()).unwrap();
    let settings = FilterSettings {
        config: config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..FilterSettings::default()
    };
    rt.load_filter(name, &guest(&format!("c-{name}.wasm")), settings)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn decide(f: &Filter, headers: &[(&str, &[u8])]) -> RequestDecision {
    let mut s = f.instance().unwrap();
    s.on_request(&request(headers)).unwrap().unwrap()
}

/// HMAC-SHA256 (RFC 2104), as lower-case hex.
fn hmac_hex(key: &[u8], msg: &[u8]) -> String {
    let mut k = [0u8; 64];
    k[..key.len()].copy_from_slice(key);
    let pad = |b: u8| k.iter().map(|x| x ^ b).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(msg)
        .finalize();
    let outer = Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize();
    outer.iter().map(|b| format!("{b:02x}")).collect()
}

fn token(secret: &str, subject: &str, expires: u64) -> String {
    let signed = format!("{subject}.{expires}");
    format!(
        "Bearer {signed}.{}",
        hmac_hex(secret.as_bytes(), signed.as_bytes())
    )
}

fn refused(d: RequestDecision, why: &str) {
    match d {
        RequestDecision::Respond(r) => {
            assert_eq!(r.status, 401);
            let challenge = r
                .headers
                .iter()
                .find(|(n, _)| n == "www-authenticate")
                .expect("challenge");
            assert!(
                challenge.1.to_str().unwrap().contains(why),
                "{challenge:?} does not say {why}"
            );
        }
        other => panic!("expected 401 ({why}), got {other:?}"),
    }
}

#[test]
fn hmac_auth_lets_valid_tokens_through_and_answers_401_to_the_rest() {
    let f = load("hmac-auth", &[("secret", "s3cret")]);
    let valid = token("s3cret", "alice", 0); // never expires
    match decide(&f, &[("authorization", valid.as_bytes())]) {
        RequestDecision::Continue(fwd) => {
            assert_eq!(fwd.edits.set.len(), 1);
            assert_eq!(fwd.edits.set[0].0, "x-auth-subject");
            assert_eq!(fwd.edits.set[0].1, "alice");
            assert_eq!(fwd.edits.remove, vec!["authorization"]);
        }
        other => panic!("expected continue, got {other:?}"),
    }
    let future = token("s3cret", "bob", 4_000_000_000);
    assert!(matches!(
        decide(&f, &[("authorization", future.as_bytes())]),
        RequestDecision::Continue(_)
    ));

    refused(decide(&f, &[]), "no token");
    let forged = token("other", "alice", 0);
    refused(
        decide(&f, &[("authorization", forged.as_bytes())]),
        "bad signature",
    );
    let expired = token("s3cret", "alice", 1_000_000_000);
    refused(
        decide(&f, &[("authorization", expired.as_bytes())]),
        "token expired",
    );
    let tampered = valid.replace("alice", "mallory");
    refused(
        decide(&f, &[("authorization", tampered.as_bytes())]),
        "bad signature",
    );
    refused(
        decide(&f, &[("authorization", b"Basic YTpi")]),
        "not a bearer token",
    );

    let unconfigured = load("hmac-auth", &[]);
    refused(
        decide(&unconfigured, &[("authorization", valid.as_bytes())]),
        "no secret configured",
    );
}

#[test]
fn ab_cookie_routes_by_cookie_and_assigns_a_sticky_variant() {
    let f = load("ab-cookie", &[("pool-b", "canary")]);
    match decide(&f, &[("cookie", b"x=1; ab=b; y=2")]) {
        RequestDecision::Continue(fwd) => {
            assert_eq!(fwd.pool.as_deref(), Some("canary"));
            assert_eq!(fwd.edits.set[0].1, "b");
            assert!(fwd.response_headers.is_empty());
        }
        other => panic!("{other:?}"),
    }
    match decide(&f, &[("cookie", b"ab=a")]) {
        RequestDecision::Continue(fwd) => {
            assert_eq!(fwd.pool, None);
            assert_eq!(fwd.edits.set[0].1, "a");
        }
        other => panic!("{other:?}"),
    }
    // No cookie: a variant from the client's address and agent, the same every time, and a
    // cookie to keep it.
    let assign = |ua: &[u8]| match decide(&f, &[("user-agent", ua)]) {
        RequestDecision::Continue(fwd) => {
            let variant = fwd.edits.set[0].1.to_str().unwrap().to_string();
            let (name, cookie) = &fwd.response_headers[0];
            assert_eq!(name, "set-cookie");
            assert!(
                cookie
                    .to_str()
                    .unwrap()
                    .starts_with(&format!("ab={variant}; Path=/")),
                "{cookie:?}"
            );
            assert_eq!(fwd.pool.is_some(), variant == "b");
            variant
        }
        other => panic!("{other:?}"),
    };
    let variants: Vec<String> = (0..40)
        .map(|i| assign(format!("agent-{i}").as_bytes()))
        .collect();
    assert_eq!(assign(b"agent-7"), variants[7], "not sticky");
    assert!(variants.iter().any(|v| v == "a") && variants.iter().any(|v| v == "b"));

    let all_b = load("ab-cookie", &[("pool-b", "canary"), ("percent-b", "100")]);
    match decide(&all_b, &[]) {
        RequestDecision::Continue(fwd) => assert_eq!(fwd.pool.as_deref(), Some("canary")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn header_rewrite_edits_both_directions() {
    let f = load(
        "header-rewrite",
        &[
            ("request-set", "x-edge=breakwater; x-region = eu "),
            ("request-remove", "cookie; x-debug"),
            ("strip-prefix", "/p"),
            ("response-set", "x-frame-options=DENY"),
            ("response-remove", "server; x-powered-by"),
        ],
    );
    let headers: &[(&str, &[u8])] = &[("cookie", b"a=1"), ("accept", b"*/*")];
    let mut s = f.instance().unwrap();
    match s.on_request(&request(headers)).unwrap().unwrap() {
        RequestDecision::Continue(fwd) => {
            let set: Vec<(String, String)> = fwd
                .edits
                .set
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
                .collect();
            assert_eq!(
                set,
                [
                    ("x-edge".into(), "breakwater".into()),
                    ("x-region".into(), "eu".into())
                ]
            );
            assert_eq!(fwd.edits.remove, vec!["cookie", "x-debug"]);
            assert_eq!(fwd.path.as_deref(), Some("/"), "/p stripped from /p");
        }
        other => panic!("{other:?}"),
    }
    let edits = s
        .on_response(
            &request(headers),
            200,
            Headers::List(&[("server", b"nginx")]),
        )
        .unwrap()
        .unwrap();
    assert_eq!(edits.set[0].0, "x-frame-options");
    assert_eq!(edits.set[0].1, "DENY");
    assert_eq!(edits.remove, vec!["server", "x-powered-by"]);

    // Unconfigured: changes nothing.
    let plain = load("header-rewrite", &[]);
    match decide(&plain, headers) {
        RequestDecision::Continue(fwd) => assert_eq!(fwd, Default::default()),
        other => panic!("{other:?}"),
    }
}
