//! The real `breakwater` binary, started on port 0 with a config the test writes.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Path of the binary: `BREAKWATER_BIN`, or `target/<profile>/breakwater` beside the test.
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("BREAKWATER_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let bin = dir.join("breakwater");
    assert!(
        bin.exists(),
        "{} not found: build it first (cargo build -p breakwater-proxy)",
        bin.display()
    );
    bin
}

/// Run `breakwater <command> --config <config>` to completion (for `check`, and for `run`
/// when it is expected to fail at startup).
pub fn cli(command: &str, config: &Path) -> std::process::Output {
    Command::new(binary())
        .args([command, "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A running node. Dropping it kills the process; its stderr is printed if the test failed.
pub struct Node {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    /// Listener name -> bound address, from the startup lines.
    pub addrs: HashMap<String, SocketAddr>,
    stderr: Arc<Mutex<String>>,
    stderr_lines: mpsc::Receiver<String>,
    stderr_reader: Option<std::thread::JoinHandle<()>>,
    /// Standard output after `breakwater ready` (the access log), line by line.
    stdout_lines: Arc<Mutex<Vec<String>>>,
}

impl Node {
    /// Write `yaml` to a fresh directory and start the node on it. `{DIR}` in the YAML is
    /// replaced by that directory (for certificates, pid files and sockets).
    pub fn start(yaml: &str) -> Node {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, yaml, &[])
    }

    pub fn start_in(dir: tempfile::TempDir, yaml: &str, extra_args: &[&str]) -> Node {
        Self::start_with_env(dir, yaml, extra_args, &[])
    }

    /// [`Node::start_in`] with these environment variables set for the process.
    pub fn start_with_env(
        dir: tempfile::TempDir,
        yaml: &str,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> Node {
        let config = dir.path().join("edge.yaml");
        std::fs::write(&config, with_defaults(yaml, dir.path())).unwrap();
        let mut node = Self::spawn_with_env(dir, config, extra_args, env);
        node.wait_ready();
        node
    }

    /// The embedded demo (`breakwater` with no config), on free ports.
    pub fn demo() -> Node {
        let dir = tempfile::tempdir().unwrap();
        let mut node = Self::spawn_args(
            dir,
            PathBuf::new(),
            &[
                "--listen",
                "127.0.0.1:0",
                "--admin",
                "127.0.0.1:0",
                "--tls-listen",
                "127.0.0.1:0",
            ],
            &[],
        );
        node.wait_ready();
        node
    }

    /// Start without waiting for readiness (for startup failures).
    pub fn spawn(dir: tempfile::TempDir, config: PathBuf, extra_args: &[&str]) -> Node {
        Self::spawn_with_env(dir, config, extra_args, &[])
    }

    fn spawn_with_env(
        dir: tempfile::TempDir,
        config: PathBuf,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> Node {
        let mut args = vec![
            "run".to_string(),
            "--config".to_string(),
            config.display().to_string(),
        ];
        args.extend(extra_args.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Self::spawn_args(dir, config, &args, env)
    }

    fn spawn_args(
        dir: tempfile::TempDir,
        config: PathBuf,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Node {
        let mut child = Command::new(binary())
            .args(args)
            .env("RUST_LOG", "info,pingora_core=warn,pingora_proxy=warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let sink = stderr.clone();
        let reader = std::thread::spawn(move || {
            let mut line = String::new();
            while err.read_line(&mut line).unwrap_or(0) > 0 {
                sink.lock().unwrap().push_str(&line);
                let _ = tx.send(line.clone());
                line.clear();
            }
        });
        Node {
            child,
            dir,
            config,
            addrs: HashMap::new(),
            stderr,
            stderr_lines: rx,
            stderr_reader: Some(reader),
            stdout_lines: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn wait_ready(&mut self) {
        let stdout = self.child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let after_ready = self.stdout_lines.clone();
        std::thread::spawn(move || {
            let mut ready = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if ready {
                    after_ready.lock().unwrap().push(line);
                    continue;
                }
                ready = line == "breakwater ready";
                let _ = tx.send(line);
            }
        });
        loop {
            match rx.recv_timeout(Duration::from_secs(90)) {
                Ok(line) if line == "breakwater ready" => return,
                Ok(line) => {
                    // "http://127.0.0.1:1234 (web)"
                    if let Some((url, name)) = line.split_once(" (") {
                        let addr = url.rsplit("//").next().unwrap().parse().unwrap();
                        self.addrs
                            .insert(name.trim_end_matches(')').to_string(), addr);
                    }
                }
                Err(_) => panic!("node did not become ready; stderr:\n{}", self.stderr()),
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn addr(&self, listener: &str) -> SocketAddr {
        *self
            .addrs
            .get(listener)
            .unwrap_or_else(|| panic!("no listener {listener}: {:?}", self.addrs))
    }

    /// Lines printed to standard output after startup (the access log).
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout_lines.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Wait for a stderr line containing `needle` (e.g. a reload result), up to 20 s.
    pub fn wait_log(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.stderr_lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => continue,
                Err(_) => panic!("no log line with {needle:?}; stderr:\n{}", self.stderr()),
            }
        }
    }

    /// Replace the config file (same `{DIR}` substitution) and send SIGHUP; returns the log
    /// line that reports the outcome.
    pub fn reload(&self, yaml: &str) -> String {
        std::fs::write(&self.config, with_defaults(yaml, self.dir.path())).unwrap();
        self.signal("HUP");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.stderr_lines.recv_timeout(left) {
                Ok(line) if line.contains("config reload") => return line,
                Ok(_) => continue,
                Err(_) => panic!("no reload outcome; stderr:\n{}", self.stderr()),
            }
        }
    }

    /// Wait for the process to exit, up to `secs`.
    pub fn wait_exit(&mut self, secs: u64) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "node did not exit; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Full stdout (only for nodes that were spawned, not started).
    pub fn read_stdout(&mut self) -> String {
        let mut s = String::new();
        if let Some(mut o) = self.child.stdout.take() {
            let _ = o.read_to_string(&mut s);
        }
        s
    }
}

/// Add per-test pid file and upgrade socket paths unless the YAML sets a `server:` block.
pub fn with_defaults(yaml: &str, dir: &Path) -> String {
    let mut text = yaml.replace("{DIR}", &dir.display().to_string());
    if !text.contains("\nserver:") && !text.starts_with("server:") {
        text.push_str(&format!(
            "\nserver:\n  threads: 2\n  grace_period: 2s\n  shutdown_timeout: 1s\n  pid_file: {d}/bw.pid\n  upgrade_sock: {d}/upgrade.sock\n",
            d = dir.display()
        ));
    }
    if !text.contains("\nadmin:") {
        text.push_str("\nadmin:\n  address: 127.0.0.1:0\n");
    }
    text
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(r) = self.stderr_reader.take() {
            let _ = r.join();
        }
        if std::thread::panicking() {
            eprintln!("---- breakwater stderr ----\n{}", self.stderr());
        }
    }
}

/// The process started by [`upgrade`]; killed and reaped when dropped.
pub struct Upgraded(pub Child);

impl Drop for Upgraded {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A graceful binary upgrade: start a new process with `--upgrade` on `config`, wait until it
/// listens on `old`'s upgrade socket, send `old` SIGQUIT and wait for it to exit cleanly
/// (it hands its listeners over, then drains). Returns the new process (killed when dropped,
/// so a failing test leaves no process behind) and the old node, whose directory the new
/// process may still use.
pub async fn upgrade(old: Node, config: &Path) -> (Upgraded, Node) {
    let log = std::fs::File::create(old.dir.path().join("upgraded.log")).unwrap();
    let new = Command::new(binary())
        .args(["run", "--upgrade", "--config"])
        .arg(config)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let new = Upgraded(new);
    let sock = old.dir.path().join("upgrade.sock");
    super::eventually(20, "new process listens on the upgrade socket", || {
        let sock = sock.clone();
        async move { sock.exists() }
    })
    .await;
    old.signal("QUIT");
    let mut old = old;
    let (status, old) = tokio::task::spawn_blocking(move || (old.wait_exit(30), old))
        .await
        .unwrap();
    assert!(status.success(), "old process: {status:?}");
    (new, old)
}
