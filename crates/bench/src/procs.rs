//! Child processes: the server under test (or the relay), and the worker processes.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::worker::{AgentCred, Cmd, Reply};

/// A server we started: Confab itself or the relay.
pub struct Server {
    pub child: Child,
    pub pid: u32,
    pub base: String,
    /// Its SQLite database, whose log a throughput step looks into (not the bare relay's,
    /// nor one on PostgreSQL).
    pub db: Option<PathBuf>,
}

impl Server {
    async fn spawn(mut cmd: Command, db: Option<PathBuf>) -> anyhow::Result<Self> {
        cmd.stdout(Stdio::piped())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "warn");
        }
        let mut child = cmd.spawn().context("could not start the server")?;
        let pid = child.id().ok_or_else(|| anyhow!("no pid"))?;
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let base = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(l) = lines.next_line().await? {
                if let Some(rest) = l.strip_prefix("listening on ") {
                    return Ok(rest.trim().to_owned());
                }
            }
            bail!("server exited before listening")
        })
        .await
        .map_err(|_| anyhow!("server did not start in 60 s"))??;
        // Keep draining its stdout.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        // A server told to use PostgreSQL (`CONFAB_DATABASE__URL`) has no file here.
        let db = db.filter(|p| p.exists());
        Ok(Self {
            child,
            pid,
            base,
            db,
        })
    }

    pub async fn confab(bin: &Path, data_dir: &Path) -> anyhow::Result<Self> {
        let mut cmd = Command::new(bin);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir);
        Self::spawn(cmd, Some(data_dir.join("confab.db"))).await
    }

    /// The bare relay; with `store`, one that persists every message in a fresh SQLite
    /// file there (the storage ceiling's group commit) before it acks and relays it.
    pub async fn relay(store: Option<&Path>) -> anyhow::Result<Self> {
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.args(["relay", "--listen", "127.0.0.1:0"]);
        if let Some(dir) = store {
            cmd.arg("--store").arg(dir);
        }
        Self::spawn(cmd, store.map(crate::ceiling::Storage::file)).await
    }

    /// SIGTERM (graceful shutdown), then SIGKILL after 10 s.
    pub async fn stop(mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// A worker process and its command pipe.
pub struct Worker {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    pub pid: u32,
}

impl Worker {
    pub async fn spawn() -> anyhow::Result<Self> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("could not start a worker")?;
        let pid = child.id().unwrap_or(0);
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Ok(Self {
            child,
            stdin,
            lines,
            pid,
        })
    }

    pub async fn call(&mut self, cmd: &Cmd) -> anyhow::Result<Value> {
        self.stdin
            .write_all(format!("{}\n", serde_json::to_string(cmd)?).as_bytes())
            .await?;
        self.stdin.flush().await?;
        let line = self
            .lines
            .next_line()
            .await?
            .ok_or_else(|| anyhow!("worker {} exited", self.pid))?;
        let r: Reply =
            serde_json::from_str(&line).with_context(|| format!("worker said {line}"))?;
        if r.ok {
            Ok(r.data)
        } else {
            bail!("worker {}: {}", self.pid, r.error.unwrap_or_default())
        }
    }

    pub async fn quit(mut self) {
        let _ = self.call(&Cmd::Quit).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

/// Several workers driven in lockstep.
pub struct Pool {
    pub workers: Vec<Worker>,
}

impl Pool {
    /// `n` workers, each with `ips_per_worker` source addresses of its own (127.0.0.2 up),
    /// and its share of `agents` (round robin).
    pub async fn start(
        n: usize,
        ips_per_worker: usize,
        base: &str,
        site_key: &str,
        relay: bool,
        agents: &[AgentCred],
    ) -> anyhow::Result<Self> {
        let mut workers = Vec::new();
        for i in 0..n {
            let mut w = Worker::spawn().await?;
            let src_ips = (0..ips_per_worker)
                .map(|j| format!("127.0.0.{}", 2 + i * ips_per_worker + j))
                .collect();
            let mine = agents
                .iter()
                .enumerate()
                .filter(|(k, _)| k % n == i)
                .map(|(_, a)| a.clone())
                .collect();
            w.call(&Cmd::Init {
                base: base.into(),
                site_key: site_key.into(),
                relay,
                src_ips,
                agents: mine,
                index: i,
            })
            .await?;
            workers.push(w);
        }
        Ok(Self { workers })
    }

    /// Sends one command to every worker at once; `per` builds each one's command.
    pub async fn all(&mut self, per: impl Fn(usize) -> Cmd) -> anyhow::Result<Vec<Value>> {
        let futs = self.workers.iter_mut().enumerate().map(|(i, w)| {
            let c = per(i);
            async move { w.call(&c).await }
        });
        futures::future::join_all(futs).await.into_iter().collect()
    }

    pub async fn quit(self) {
        for w in self.workers {
            w.quit().await;
        }
    }
}

/// Sum of a numeric field over worker replies.
pub fn sum(rs: &[Value], key: &str) -> f64 {
    rs.iter().map(|r| r[key].as_f64().unwrap_or(0.0)).sum()
}

pub fn max(rs: &[Value], key: &str) -> f64 {
    rs.iter()
        .map(|r| r[key].as_f64().unwrap_or(0.0))
        .fold(0.0, f64::max)
}

pub fn first_error(rs: &[Value]) -> Value {
    rs.iter()
        .find_map(|r| r["first_error"].as_str().map(|s| json!(s)))
        .unwrap_or(Value::Null)
}
