//! A stable fuzz harness for the config loader (cargo-fuzz needs nightly): seeds from the
//! committed corpus (`tests/fuzz/*.yaml`, every golden invalid config, the reference config)
//! are mutated by a seeded generator (byte flips, truncation, splices, YAML-significant
//! tokens); every input must give a config or an error with a location, never a panic.
//! `FUZZ_ITERATIONS` raises the count (CI runs the default, bounded to a few seconds).
//! Inputs that once crashed are kept in the corpus as regression seeds.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};

const TOKENS: &[&str] = &[
    ":",
    "- ",
    "{",
    "}",
    "[",
    "]",
    ",",
    "\n",
    "  ",
    "\t",
    "&a ",
    "*a",
    "!!str ",
    "!!binary ",
    "? ",
    "|",
    ">",
    "'",
    "\"",
    "#",
    "~",
    "null",
    "-1",
    "99999999999999999999",
    "1e999",
    "0x10",
    "\u{feff}",
    "\u{0}",
    "é",
    "<<: *a",
    "---\n",
    "...\n",
    "%YAML 1.2\n",
    "listeners:",
    "routes:",
    "pools:",
    "components:",
    "match:",
    "path_prefix: /",
    "address: 127.0.0.1:0",
    "endpoints: []",
    "cache: {}",
    "http3: true",
    "filters: [x]",
    "handler: h",
    "deadline: 1ms",
    "memory_mb: 0",
];

fn seeds() -> Vec<(PathBuf, String)> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths: Vec<PathBuf> = Vec::new();
    for dir in ["tests/fuzz", "tests/ui/invalid"] {
        if let Ok(entries) = std::fs::read_dir(here.join(dir)) {
            paths.extend(
                entries
                    .map(|e| e.unwrap().path())
                    .filter(|p| p.extension().is_some_and(|e| e == "yaml")),
            );
        }
    }
    paths.push(here.join("../deploy/breakwater.yaml"));
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect()
}

fn mutate(rng: &mut StdRng, input: &str, other: &str) -> String {
    let mut bytes = input.as_bytes().to_vec();
    for _ in 0..1 + rng.random_range(0..4) {
        let at = rng.random_range(0..bytes.len() + 1);
        match rng.random_range(0..6) {
            0 if !bytes.is_empty() => {
                let i = rng.random_range(0..bytes.len());
                bytes[i] ^= 1 << rng.random_range(0..8);
            }
            1 => bytes.truncate(at),
            2 => {
                let t = TOKENS[rng.random_range(0..TOKENS.len())].as_bytes();
                bytes.splice(at..at, t.iter().copied());
            }
            3 if !bytes.is_empty() => {
                let end = (at + rng.random_range(0..64)).min(bytes.len());
                bytes.drain(at.min(end)..end);
            }
            4 => {
                // Splice a piece of another seed in.
                let o = other.as_bytes();
                let from = rng.random_range(0..o.len() + 1);
                let to = (from + rng.random_range(0..200)).min(o.len());
                bytes.splice(at..at, o[from..to].iter().copied());
            }
            _ => {
                // Repeat a line (duplicate keys, deep nesting).
                let line_end = bytes[at..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(bytes.len(), |p| at + p);
                let piece = bytes[at..line_end].to_vec();
                bytes.splice(at..at, piece);
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn arbitrary_yaml_gives_a_config_or_a_located_error_never_a_panic() {
    let seeds = seeds();
    assert!(seeds.len() > 20, "corpus missing");
    let iterations: usize = std::env::var("FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    // A new seed every run (so that CI does not replay the same inputs for ever), printed;
    // FUZZ_SEED=N replays a run, and a failure names its seed and iteration.
    let seed = fuzz_seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut ok, mut refused) = (0, 0);
    for i in 0..iterations {
        let (path, text) = &seeds[rng.random_range(0..seeds.len())];
        let (_, other) = &seeds[rng.random_range(0..seeds.len())];
        let input = mutate(&mut rng, text, other);
        let result =
            std::panic::catch_unwind(|| breakwater_config::parse(&input, Path::new("fuzz.yaml")));
        match result {
            Ok(Ok(_)) => ok += 1,
            Ok(Err(e)) => {
                let shown = e.to_string();
                assert!(
                    shown.starts_with("fuzz.yaml"),
                    "FUZZ_SEED={seed}, iteration {i}: error without its file: {shown}"
                );
                refused += 1;
            }
            Err(_) => {
                let crash = Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join(format!("tests/fuzz/crash-{i}.yaml"));
                std::fs::write(&crash, &input).unwrap();
                panic!(
                    "FUZZ_SEED={seed}, iteration {i} (corpus file {}) panicked; input saved to {}",
                    path.display(),
                    crash.display()
                );
            }
        }
    }
    eprintln!(
        "FUZZ_SEED={seed}: {iterations} inputs, {ok} valid, {refused} refused with a location"
    );
    // Both outcomes were exercised: the mutations neither broke every input nor left them all
    // valid (about 1% stay valid).
    assert!(
        ok > 0 && refused > 0,
        "FUZZ_SEED={seed}: {ok} valid, {refused} refused"
    );
}

/// `FUZZ_SEED` (decimal or 0x-hex) if set, else a fresh one; printed either way.
fn fuzz_seed() -> u64 {
    let seed = match std::env::var("FUZZ_SEED") {
        Ok(v) => match v.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => v.parse(),
        }
        .unwrap_or_else(|e| panic!("FUZZ_SEED={v}: {e}")),
        Err(_) => rand::random(),
    };
    eprintln!("FUZZ_SEED={seed} (set it to replay this run)");
    seed
}
