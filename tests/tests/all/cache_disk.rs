//! The cache's disk tier end to end: objects cached before a graceful upgrade or a crash are
//! hits after it, whole and uncorrupted; purges reach objects that are only on disk, also
//! across a restart; and a tier that cannot open leaves the node serving from memory.

use breakwater_tests as support;

use bytes::Bytes;
use http_body_util::Full;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use support::origin::{Action, Seen};
use support::{eventually, metric, Client, Node, Origin};

/// The size of every object: large enough that the bytes the device has written tell that
/// every object is on disk (padding cannot make up a missing one).
const SIZE: usize = 100 * 1024;

/// The body for `path`, fetched from the origin for the `n`th time: `path:n;` repeated.
fn body(path: &str, n: usize) -> Bytes {
    let unit = format!("{path}:{n};");
    Bytes::from(unit.repeat(SIZE / unit.len() + 1)[..SIZE].to_string())
}

/// Which fetch `body` is, if it is a whole, uncorrupted body of `path`.
fn fetch_of(path: &str, body: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(body).ok()?;
    let n = text
        .strip_prefix(path)?
        .strip_prefix(':')?
        .split(';')
        .next()?;
    let n: usize = n.parse().ok()?;
    (body.len() == SIZE && self::body(path, n) == body).then_some(n)
}

/// An origin that counts fetches per path; everything may be cached for 600 s, `/tagged`
/// carries a surrogate key and `/vary` varies on `Accept-Language`.
async fn origin() -> (Origin, Arc<Mutex<HashMap<String, usize>>>) {
    let counts: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let seen = counts.clone();
    let origin = Origin::start(Arc::new(move |s: &Seen| {
        let mut path = s.uri.split('?').next().unwrap_or("").to_string();
        if path == "/vary" {
            path = format!("/vary-{}", s.header("accept-language").unwrap_or_default());
        }
        let n = {
            let mut c = seen.lock().unwrap();
            let e = c.entry(path.clone()).or_default();
            *e += 1;
            *e
        };
        let mut headers = vec![("cache-control".to_string(), "max-age=600".to_string())];
        if path == "/tagged" {
            headers.push(("surrogate-key".into(), "t1 t2".into()));
        }
        if path.starts_with("/vary") {
            headers.push(("vary".into(), "accept-language".into()));
        }
        Action::Respond {
            status: 200,
            headers,
            body: body(&path, n),
        }
    }))
    .await;
    (origin, counts)
}

/// A node with a disk tier at `disk`, on fixed ports (`ports`: web and admin, which a
/// graceful upgrade hands over by address) or on free ones.
fn yaml(origin: &Origin, disk: &std::path::Path, ports: Option<(u16, u16)>) -> String {
    let (web, admin) = ports.unwrap_or((0, 0));
    format!(
        r#"
listeners: [{{ name: web, address: "127.0.0.1:{web}" }}]
admin: {{ address: "127.0.0.1:{admin}", token: t0ken }}
cache: {{ memory_mb: 16, disk: {{ path: "{disk}", size_mb: 256 }} }}
pools: {{ o: {{ endpoints: ["{origin}"] }} }}
routes: [{{ pool: o, cache: {{}} }}]
"#,
        disk = disk.display(),
        origin = origin.addr,
    )
}

async fn metrics(admin: SocketAddr) -> String {
    Client::h1()
        .get(admin, "localhost", "/metrics")
        .await
        .text()
}

/// Wait until the node's disk tier is open and has written at least `bytes`.
async fn disk_written(admin: SocketAddr, bytes: usize) {
    eventually(
        30,
        "the disk tier is open and has written the objects",
        || async move {
            let m = metrics(admin).await;
            metric(&m, "breakwater_cache_disk_up", "") == 1.0
                && metric(&m, "breakwater_cache_disk_written_bytes", "") >= bytes as f64
        },
    )
    .await;
}

/// GET `path` (with `Accept-Language: lang` when given): the fetch its body is, checked
/// whole.
async fn fetch(web: SocketAddr, path: &str, lang: Option<&str>) -> usize {
    let mut b = http::Request::get(format!("http://{web}{path}")).header("host", "a.test");
    if let Some(l) = lang {
        b = b.header("accept-language", l);
    }
    let r = Client::h1()
        .send(b.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{path}");
    let path = match lang {
        Some(l) => format!("{path}-{l}"),
        None => path.to_string(),
    };
    fetch_of(&path, &r.body).unwrap_or_else(|| panic!("{path}: a corrupt or foreign body"))
}

/// GET `a.test/big`, for `range` when given.
async fn get_big(web: SocketAddr, range: Option<&str>) -> support::Reply {
    let mut b = http::Request::get(format!("http://{web}/big")).header("host", "a.test");
    if let Some(r) = range {
        b = b.header("range", r);
    }
    Client::h1()
        .send(b.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap()
}

async fn purge(admin: SocketAddr, query: &str) -> String {
    let req = http::Request::post(format!("http://{admin}/cache/purge?{query}"))
        .header("authorization", "Bearer t0ken")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let r = Client::h1().send(req).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    r.text()
}

#[tokio::test(flavor = "multi_thread")]
async fn objects_and_purges_outlive_a_graceful_upgrade() {
    let (origin, _counts) = origin().await;
    let disk = tempfile::tempdir().unwrap();
    let ports = (support::reserved_port(), support::reserved_port());
    let old = Node::start(&yaml(&origin, disk.path(), Some(ports)));
    let (web, admin) = (old.addr("web"), old.addr("admin"));
    // What is stored before the tier has opened stays in memory only.
    disk_written(admin, 0).await;
    for p in ["/a", "/b", "/c", "/tagged"] {
        assert_eq!(fetch(web, p, None).await, 1);
    }
    for l in ["en", "fr"] {
        assert_eq!(fetch(web, "/vary", Some(l)).await, 1);
    }
    disk_written(admin, 6 * SIZE).await;
    // Purged before the upgrade: gone from memory at once, and banned on disk.
    purge(admin, "url=a.test/b").await;
    assert_eq!(fetch(web, "/b", None).await, 2);
    disk_written(admin, 7 * SIZE).await;

    // The new process opens the directory once the old one has exited.
    let config = old.dir.path().join("edge.yaml");
    let (_new, _old) = support::node::upgrade(old, &config).await;
    disk_written(admin, 0).await;
    // Memory is empty: these come from disk, every variant its own.
    assert_eq!(fetch(web, "/a", None).await, 1);
    assert_eq!(fetch(web, "/vary", Some("fr")).await, 1);
    assert_eq!(fetch(web, "/vary", Some("en")).await, 1);
    // The purge before the upgrade holds: its second fetch was stored, not the first.
    assert_eq!(fetch(web, "/b", None).await, 2);
    // Purges of objects only on disk: by surrogate key, by prefix, everything.
    purge(admin, "key=t2").await;
    assert_eq!(fetch(web, "/tagged", None).await, 2);
    purge(admin, "prefix=a.test/c").await;
    assert_eq!(fetch(web, "/c", None).await, 2);
    let m = metrics(admin).await;
    assert!(metric(&m, "breakwater_cache_disk_hits", "") >= 4.0, "{m}");
    purge(admin, "all=true").await;
    assert_eq!(fetch(web, "/a", None).await, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_while_writing_leaves_no_corrupt_object() {
    let (origin, _counts) = origin().await;
    let disk = tempfile::tempdir().unwrap();
    let yaml = yaml(&origin, disk.path(), None);
    let node = Node::start(&yaml);
    let (web, admin) = (node.addr("web"), node.addr("admin"));
    disk_written(admin, 0).await;
    let paths: Vec<String> = (0..40).map(|i| format!("/obj/{i}")).collect();
    let fetches: Vec<_> = paths
        .iter()
        .map(|p| {
            let p = p.clone();
            tokio::spawn(async move { fetch(web, &p, None).await })
        })
        .collect();
    for f in fetches {
        assert_eq!(f.await.unwrap(), 1);
    }
    // Killed (SIGKILL) while the writes are still going to disk.
    drop(node);

    let node = Node::start(&yaml);
    let (web, admin) = (node.addr("web"), node.addr("admin"));
    disk_written(admin, 0).await;
    // Every answer is whole and is one the origin gave: from disk (the first fetch) or,
    // for what had not reached the disk, from the origin again.
    let mut from_disk = 0;
    for p in &paths {
        if fetch(web, p, None).await == 1 {
            from_disk += 1;
        }
    }
    let m = metrics(admin).await;
    assert_eq!(
        metric(&m, "breakwater_cache_disk_hits", "") as usize,
        from_disk,
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disk_tier_that_cannot_open_leaves_the_node_serving_from_memory() {
    let (origin, _counts) = origin().await;
    let dir = tempfile::tempdir().unwrap();
    // A file where the directory's parent should be: the tier cannot be created.
    let blocker = dir.path().join("not-a-directory");
    std::fs::write(&blocker, b"x").unwrap();
    let node = Node::start(&yaml(&origin, &blocker.join("objects"), None));
    let (web, admin) = (node.addr("web"), node.addr("admin"));
    eventually(30, "the disk tier reports its failure", || async move {
        metric(&metrics(admin).await, "breakwater_cache_disk_errors", "") >= 1.0
    })
    .await;
    assert_eq!(
        metric(&metrics(admin).await, "breakwater_cache_disk_up", ""),
        0.0
    );
    node.wait_log("cache disk tier unavailable, serving from memory only");
    // The memory tier serves as ever.
    assert_eq!(fetch(web, "/a", None).await, 1);
    assert_eq!(fetch(web, "/a", None).await, 1);
}

/// A body over the streaming threshold (4 MiB) is written to disk while it is still
/// arriving, in pieces, and never takes the memory tier's room; it is served back from disk
/// whole, by ranges across and inside its pieces, after a crash, and not after a purge.
#[tokio::test(flavor = "multi_thread")]
async fn a_large_body_is_streamed_to_disk_and_served_back_in_pieces() {
    const BIG: usize = 12 * 1024 * 1024 + 12_345;
    const SPLIT: usize = 8 * 1024 * 1024;
    let big: Bytes = (0..BIG)
        .map(|i| (i % 251) as u8 ^ (i / 251) as u8)
        .collect();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let fetches = Arc::new(Mutex::new(0usize));
    let origin = {
        let (big, gate, fetches) = (big.clone(), gate.clone(), fetches.clone());
        Origin::start(Arc::new(move |_s: &Seen| {
            *fetches.lock().unwrap() += 1;
            Action::Gated {
                headers: vec![("cache-control".into(), "max-age=600".into())],
                body: big.clone(),
                split: SPLIT,
                gate: gate.clone(),
            }
        }))
        .await
    };
    let disk = tempfile::tempdir().unwrap();
    let yaml = format!(
        r#"
listeners: [{{ name: web, address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0", token: t0ken }}
cache: {{ memory_mb: 16, max_object_mb: 64, disk: {{ path: "{disk}", size_mb: 256 }} }}
pools: {{ o: {{ endpoints: ["{origin}"] }} }}
routes: [{{ pool: o, cache: {{}} }}]
"#,
        disk = disk.path().display(),
        origin = origin.addr,
    );
    let node = Node::start(&yaml);
    let (web, admin) = (node.addr("web"), node.addr("admin"));
    disk_written(admin, 0).await;
    let first = tokio::spawn(get_big(web, None));
    // The origin holds back everything after 8 MiB: what reaches the disk before it is let
    // go was written while the body was still arriving.
    disk_written(admin, 6 * 1024 * 1024).await;
    assert!(!first.is_finished());
    gate.add_permits(1);
    let first = first.await.unwrap();
    assert_eq!(first.status, 200);
    assert!(first.body == big, "the first answer is the origin's body");

    let hit = get_big(web, None).await;
    assert_eq!((hit.status, *fetches.lock().unwrap()), (200, 1));
    assert!(
        hit.body == big,
        "the body read back from disk is the one stored"
    );
    let m = metrics(admin).await;
    assert!(metric(&m, "breakwater_cache_disk_hits", "") >= 1.0, "{m}");
    assert!(
        metric(&m, "breakwater_cache_bytes", "") < 1024.0 * 1024.0,
        "a streamed body stays out of the memory tier: {m}"
    );
    // Ranges: across the first piece boundary, and inside the last piece.
    for (range, from, to) in [
        ("bytes=1048570-1048589", 1_048_570, 1_048_590),
        ("bytes=12582912-12582999", 12_582_912, 12_583_000),
    ] {
        let r = get_big(web, Some(range)).await;
        assert_eq!(r.status, 206, "{range}");
        assert!(r.body == big.slice(from..to), "{range}");
    }

    // Killed at once: what the hit came from was on disk, whole.
    drop(node);
    let node = Node::start(&yaml);
    let (web, admin) = (node.addr("web"), node.addr("admin"));
    disk_written(admin, 0).await;
    let after = get_big(web, None).await;
    assert_eq!((after.status, *fetches.lock().unwrap()), (200, 1));
    assert!(
        after.body == big,
        "the body after a crash is the one stored"
    );
    purge(admin, "url=a.test/big").await;
    gate.add_permits(1);
    let refetched = get_big(web, None).await;
    assert_eq!((refetched.status, *fetches.lock().unwrap()), (200, 2));
    assert!(refetched.body == big);
}

/// The shim that makes writes under a directory fail with ENOSPC (tests/fault/full-disk.c),
/// built with the machine's C compiler into `dir`.
fn full_disk_shim(dir: &std::path::Path) -> std::path::PathBuf {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fault/full-disk.c");
    let out = dir.join("full-disk.so");
    let status = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&out)
        .arg(&src)
        .arg("-ldl")
        .status()
        .expect("cc (the C compiler) runs");
    assert!(status.success(), "the full-disk shim builds");
    out
}

/// A disk that refuses writes (every write under the tier's directory fails with ENOSPC, as
/// on a full disk, while a marker file exists) fails no request: the tier switches itself
/// off (its metric and a log line say so) and objects are served from memory; a purge made
/// meanwhile still holds for what is on disk; after a restart on a disk that takes writes
/// again, what was written before is served from disk and nothing refused comes back.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_fails_no_request_and_leaves_the_node_on_memory() {
    let scratch = tempfile::tempdir().unwrap();
    let shim = full_disk_shim(scratch.path());
    let marker = scratch.path().join("full");
    let (origin, _counts) = origin().await;
    let disk = tempfile::tempdir().unwrap();
    let disk_path = std::fs::canonicalize(disk.path()).unwrap();
    let env = [
        ("LD_PRELOAD", shim.to_str().unwrap()),
        ("BREAKWATER_FAULT_DIR", disk_path.to_str().unwrap()),
        ("BREAKWATER_FAULT_FULL", marker.to_str().unwrap()),
    ];
    let yaml = yaml(&origin, &disk_path, None);
    let node = Node::start_with_env(tempfile::tempdir().unwrap(), &yaml, &[], &env);
    let (web, admin) = (node.addr("web"), node.addr("admin"));
    disk_written(admin, 0).await;
    for p in ["/a", "/f"] {
        assert_eq!(fetch(web, p, None).await, 1);
    }
    disk_written(admin, 2 * SIZE).await;

    std::fs::write(&marker, b"").unwrap();
    for p in ["/b", "/c", "/d"] {
        assert_eq!(fetch(web, p, None).await, 1);
    }
    eventually(30, "the tier switches itself off", || async move {
        let m = metrics(admin).await;
        metric(&m, "breakwater_cache_disk_up", "") == 0.0
            && metric(&m, "breakwater_cache_disk_errors", "") >= 1.0
    })
    .await;
    node.wait_log("serving from memory only until restart");
    // Served from memory meanwhile, stored or not.
    for p in ["/b", "/f"] {
        assert_eq!(fetch(web, p, None).await, 1);
    }
    assert_eq!(fetch(web, "/g", None).await, 1);
    // Purged while the tier is off: the ban is kept for what is on disk.
    purge(admin, "url=a.test/a").await;

    std::fs::remove_file(&marker).unwrap();
    drop(node);
    let node = Node::start(&yaml);
    let (web, admin) = (node.addr("web"), node.addr("admin"));
    disk_written(admin, 0).await;
    // Written before the disk filled: from disk. Purged meanwhile, or refused: the origin.
    assert_eq!(fetch(web, "/f", None).await, 1);
    assert_eq!(fetch(web, "/a", None).await, 2);
    assert_eq!(fetch(web, "/b", None).await, 2);
    let m = metrics(admin).await;
    assert_eq!(metric(&m, "breakwater_cache_disk_hits", ""), 1.0, "{m}");
}

/// A streamed body (on disk only) that goes stale is revalidated: the origin's 304 refreshes
/// the stored head and freshness (the next request is a hit), and the body is still served
/// whole from its pieces, never fetched again.
#[tokio::test(flavor = "multi_thread")]
async fn a_streamed_object_is_revalidated_with_a_304_and_kept() {
    const BIG: usize = 5 * 1024 * 1024 + 7;
    let big: Bytes = (0..BIG).map(|i| (i % 253) as u8).collect();
    let full = Arc::new(Mutex::new(0usize));
    let revalidations = Arc::new(Mutex::new(0usize));
    let origin = {
        let (big, full, revalidations) = (big.clone(), full.clone(), revalidations.clone());
        Origin::start(Arc::new(move |s: &Seen| {
            let headers = vec![
                ("cache-control".to_string(), "max-age=2".to_string()),
                ("etag".to_string(), "\"v1\"".to_string()),
            ];
            if s.header("if-none-match").as_deref() == Some("\"v1\"") {
                *revalidations.lock().unwrap() += 1;
                let mut headers = headers;
                headers.push(("x-refreshed".into(), "yes".into()));
                return Action::Respond {
                    status: 304,
                    headers,
                    body: Bytes::new(),
                };
            }
            *full.lock().unwrap() += 1;
            Action::Respond {
                status: 200,
                headers,
                body: big.clone(),
            }
        }))
        .await
    };
    let disk = tempfile::tempdir().unwrap();
    let node = Node::start(&yaml(&origin, disk.path(), None));
    let (web, admin) = (node.addr("web"), node.addr("admin"));
    disk_written(admin, 0).await;
    assert!(get_big(web, None).await.body == big);
    eventually(10, "a revalidation with 304", || async {
        let r = get_big(web, None).await;
        assert!(r.body == big, "the body is whole while it is revalidated");
        *revalidations.lock().unwrap() >= 1
    })
    .await;
    // The refreshed head is the one stored: fresh again (a hit, no new revalidation), with
    // the 304's new field, served from disk.
    let r = get_big(web, None).await;
    assert_eq!(r.status, 200);
    assert!(r.body == big);
    assert_eq!(
        *revalidations.lock().unwrap(),
        1,
        "fresh again after the 304"
    );
    assert!(
        r.header("cache-status").is_some_and(|s| s.contains("hit")),
        "{:?}",
        r.headers
    );
    assert_eq!(r.header("x-refreshed"), Some("yes"), "{:?}", r.headers);
    assert_eq!(*full.lock().unwrap(), 1, "the body is never fetched again");
    let m = metrics(admin).await;
    assert!(
        metric(&m, "breakwater_cache_bytes", "") < 1024.0 * 1024.0,
        "{m}"
    );
}
