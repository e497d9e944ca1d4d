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

    fn start_with(password: Option<String>, args: &[&str]) -> Redis {
        for _ in 0..5 {
            // Known in advance and kept: a restarted server comes back on it.
            let port = crate::reserved_port();
            let mut redis = Redis {
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                child: None,
                password: password.clone(),
                extra: args.iter().map(|a| a.to_string()).collect(),
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
        command
            .args(["--port", &self.addr.port().to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
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
        let out = Command::new("redis-cli")
            .args(["-p", &self.addr.port().to_string()])
            .args(args)
            .output()
            .expect("redis-cli runs");
        assert!(out.status.success(), "redis-cli {args:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `redis://` address for a config.
    pub fn url(&self) -> String {
        format!("redis://{}/0", self.addr)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}
