//! A real Redis (`redis-server` from Debian, which tests/run.sh installs) on a free loopback
//! port, started and owned by one test: no persistence, killed when dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Redis {
    pub addr: SocketAddr,
    child: Option<Child>,
    /// `requirepass`, when it has one.
    password: Option<String>,
    /// More `redis-server` arguments (`--stream-node-max-entries 1`).
    extra: Vec<String>,
    /// TLS only (`rediss://`): the directory of its certificate, key and CA.
    tls: Option<std::path::PathBuf>,
}

impl Redis {
    /// Start one on a port that was free a moment ago (another try if it was taken since).
    pub fn start() -> Redis {
        Self::start_with(None, &[])
    }

    /// Start one that requires `password` (Redis's `requirepass`).
    pub fn start_with_password(password: &str) -> Redis {
        Self::start_with(Some(password.to_string()), &[])
    }

    /// Start one with more `redis-server` arguments.
    pub fn start_with_args(args: &[&str]) -> Redis {
        Self::start_with(None, args)
    }

    /// Start one that speaks TLS only, with a certificate for 127.0.0.1 that `ca` signs
    /// (written to `dir`, beside `ca.pem`).
    pub fn start_tls(ca: &crate::certs::Ca, dir: &std::path::Path) -> Redis {
        ca.leaf(dir, "redis", &["127.0.0.1"]);
        std::fs::write(dir.join("ca.pem"), &ca.pem).unwrap();
        Self::start_on(None, &[], Some(dir.to_path_buf()))
    }

    fn start_with(password: Option<String>, args: &[&str]) -> Redis {
        Self::start_on(password, args, None)
    }

    fn start_on(password: Option<String>, args: &[&str], tls: Option<std::path::PathBuf>) -> Redis {
        for _ in 0..5 {
            // Known in advance and kept: a restarted server comes back on it.
            let port = crate::reserved_port();
            let mut redis = Redis {
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                child: None,
                password: password.clone(),
                extra: args.iter().map(|a| a.to_string()).collect(),
                tls: tls.clone(),
            };
            if redis.restart() {
                return redis;
            }
        }
        panic!("redis-server did not start (is it installed? tests/run.sh installs it)");
    }

    /// Stop it (the connections of its clients break).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start it again on the same port, empty; whether it answers `PING`.
    pub fn restart(&mut self) -> bool {
        self.stop();
        let mut command = Command::new("redis-server");
        let port = self.addr.port().to_string();
        match &self.tls {
            None => command.args(["--port", &port]),
            Some(dir) => command
                .args([
                    "--port",
                    "0",
                    "--tls-port",
                    &port,
                    "--tls-auth-clients",
                    "no",
                ])
                .arg("--tls-cert-file")
                .arg(dir.join("redis.pem"))
                .arg("--tls-key-file")
                .arg(dir.join("redis.key"))
                .arg("--tls-ca-cert-file")
                .arg(dir.join("ca.pem")),
        };
        command.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
        if let Some(p) = &self.password {
            command.args(["--requirepass", p]);
        }
        command.args(&self.extra);
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs");
        // Its log says when it accepts connections; it ends instead when the port is taken.
        let log = BufReader::new(child.stdout.take().expect("piped"));
        self.child = Some(child);
        let mut lines = log.lines();
        let ready = lines
            .by_ref()
            .map_while(Result::ok)
            .any(|l| l.contains("Ready to accept connections"));
        // The rest of its log is read and dropped, so that it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        ready && self.ping()
    }

    fn ping(&self) -> bool {
        if self.tls.is_some() {
            return self.command(&["PING"]).is_ok_and(|o| o.trim() == "PONG");
        }
        let Ok(mut s) = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        let (auth, expect): (String, &[u8]) = match &self.password {
            Some(p) => (format!("AUTH {p}\r\nPING\r\n"), b"+OK\r\n+PONG\r\n"),
            None => ("PING\r\n".into(), b"+PONG\r\n"),
        };
        let mut buf = vec![0u8; expect.len()];
        s.write_all(auth.as_bytes()).is_ok() && s.read_exact(&mut buf).is_ok() && buf == expect
    }

    /// Run one command with `redis-cli` (from Debian's redis-tools); its output.
    pub fn cli(&self, args: &[&str]) -> String {
        self.command(args)
            .unwrap_or_else(|e| panic!("redis-cli {args:?}: {e}"))
    }

    fn command(&self, args: &[&str]) -> Result<String, String> {
        let mut cli = Command::new("redis-cli");
        cli.args(["-p", &self.addr.port().to_string()]);
        if let Some(dir) = &self.tls {
            cli.arg("--tls").arg("--cacert").arg(dir.join("ca.pem"));
        }
        let out = cli.args(args).output().map_err(|e| e.to_string())?;
        match out.status.success() {
            true => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
            false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
        }
    }

    /// `redis://` (or `rediss://`) address for a config.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://{}/0", self.addr)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}
