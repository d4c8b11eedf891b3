//! A real `otp serve` process on a test database, listening on a free port of 127.0.0.1.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::TestDb;
use super::http::Client;

/// `serve --addr 127.0.0.1:0`: the command on a free port of loopback.
pub(crate) const SERVE: [&str; 3] = ["serve", "--addr", "127.0.0.1:0"];

/// A running server. Dropping it kills the process if it is still running.
pub(crate) struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`, as the server printed it.
    pub(crate) url: String,
    /// Its standard error.
    log: PathBuf,
}

impl Server {
    /// Starts `otp --database-url URL serve --addr 127.0.0.1:0` with the database's
    /// environment and `env`, and waits for the line that names its address.
    #[track_caller]
    pub(crate) fn start(db: &TestDb, env: &[(&str, &str)]) -> Self {
        Self::start_with(db, &[], env)
    }

    /// As [`Server::start`] with more arguments after `serve`.
    #[track_caller]
    pub(crate) fn start_with(db: &TestDb, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = db.command(SERVE);
        command.args(args).envs(env.iter().copied());
        Self::spawn(command, db.dir())
    }

    /// Runs `command` (an `otp ... serve` command line) with its standard error in a log file
    /// in `dir`, and waits for the line that names its address.
    #[track_caller]
    pub(crate) fn spawn(mut command: Command, dir: &Path) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let log = dir.join(format!(
            "serve-{}.log",
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&log).expect("log file"));
        let mut child = command.spawn().expect("start otp serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let (lines, line) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut first = String::new();
            let _ = reader.read_line(&mut first);
            let _ = lines.send(first);
            // Keep reading, so the server never blocks on a full pipe.
            let mut rest = String::new();
            while reader.read_line(&mut rest).is_ok_and(|n| n > 0) {
                rest.clear();
            }
        });
        let first = line
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_default();
        let Some(url) = first
            .trim_end()
            .strip_prefix("otp serve: listening on ")
            .map(str::to_owned)
        else {
            let _ = child.kill();
            let status = child.wait();
            panic!(
                "otp serve did not print its address (got {first:?}, {status:?}); its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        Self { child, url, log }
    }

    /// A client of this server, without a cookie.
    pub(crate) fn client(&self) -> Client {
        Client::new(&self.url)
    }

    /// What the server has logged so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits at most `limit` for the process to end.
    #[track_caller]
    pub(crate) fn terminate(&mut self, limit: Duration) -> ExitStatus {
        let sent = std::process::Command::new("kill")
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill failed: {sent:?}");
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for otp serve") {
                return status;
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                panic!(
                    "otp serve did not stop within {limit:?} of SIGTERM; its log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Server {
    /// Kills the process with SIGKILL (no shutdown, no flush: a crash) and waits for it.
    pub(crate) fn kill(&mut self) -> ExitStatus {
        let _ = self.child.kill();
        self.child.wait().expect("wait for otp serve")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
