//! A worker process: `confab-bench worker` reads one JSON command per line on stdin and
//! answers one JSON line on stdout. Each worker has its own file-descriptor budget and its
//! own 127.0.0.x source addresses; all the sockets of a conversation (its visitor and the
//! agent that serves it) live in one worker, so loss and duplication are counted exactly.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};

use crate::client::{self, ACmd, Stats, VCmd, VisitorState};
use crate::util::{self, now_ns};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentCred {
    pub id: i64,
    pub cookie: String,
    pub csrf: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Cmd {
    Init {
        base: String,
        site_key: String,
        /// Talking to the relay (ceiling) rather than Confab.
        relay: bool,
        src_ips: Vec<String>,
        agents: Vec<AgentCred>,
        index: usize,
    },
    /// Creates visitor sessions (and a conversation each, assigned to one of this worker's
    /// agents, when `conversations`).
    Visitors {
        n: usize,
        conversations: bool,
    },
    /// Connects the agents (subscribed to their conversations) and then every visitor,
    /// `concurrency` at a time.
    Connect {
        concurrency: usize,
    },
    /// Open-loop chat: `rate` messages/s for `secs`, half from visitors, half from agents.
    Rate {
        step: usize,
        rate: f64,
        secs: f64,
        start_ns: u64,
        drain_secs: f64,
    },
    /// Every visitor socket drops at once (no close frame).
    Drop,
    /// While visitors are away, agents post `per_conv` messages to each conversation.
    Post {
        per_conv: usize,
    },
    /// Every visitor reconnects at once with its resume map and waits to catch up.
    Resume {
        timeout_secs: f64,
    },
    /// The busy day's share of this worker.
    BusyDay {
        conversations: usize,
        messages: usize,
        concurrency: usize,
    },
    /// Closes everything.
    Close,
    Quit,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    pub error: Option<String>,
    #[serde(default)]
    pub data: Value,
}

pub async fn main() -> anyhow::Result<()> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut out = tokio::io::stdout();
    let mut w: Option<Worker> = None;
    while let Some(line) = lines.next_line().await? {
        let cmd: Cmd = serde_json::from_str(&line).context("worker command")?;
        let quit = matches!(cmd, Cmd::Quit);
        let res = match cmd {
            Cmd::Init {
                base,
                site_key,
                relay,
                src_ips,
                agents,
                index,
            } => Worker::new(base, site_key, relay, src_ips, agents, index).map(|x| {
                w = Some(x);
                Value::Null
            }),
            Cmd::Quit => Ok(Value::Null),
            c => match w.as_mut() {
                Some(w) => w.handle(c).await,
                None => Err(anyhow!("worker not initialised")),
            },
        };
        let reply = match res {
            Ok(data) => Reply {
                ok: true,
                error: None,
                data,
            },
            Err(e) => Reply {
                ok: false,
                error: Some(format!("{e:#}")),
                data: Value::Null,
            },
        };
        out.write_all(format!("{}\n", serde_json::to_string(&reply)?).as_bytes())
            .await?;
        out.flush().await?;
        if quit {
            break;
        }
    }
    Ok(())
}

struct Agent {
    cred: AgentCred,
    tx: Option<mpsc::UnboundedSender<ACmd>>,
    convs: Vec<i64>,
}

struct Visitor {
    st: Arc<VisitorState>,
    tx: Option<mpsc::UnboundedSender<VCmd>>,
    /// Index into `agents` of the agent serving this visitor's conversation.
    agent: usize,
}

struct Worker {
    base: String,
    server: SocketAddr,
    site_key: String,
    relay: bool,
    src: Vec<IpAddr>,
    index: usize,
    http: Vec<reqwest::Client>,
    agents: Vec<Agent>,
    visitors: Vec<Visitor>,
    stats: Arc<Stats>,
    next_src: usize,
    /// The words, client ids and turn order of this worker's messages.
    talk: util::Talk,
}

impl Worker {
    fn new(
        base: String,
        site_key: String,
        relay: bool,
        src_ips: Vec<String>,
        agents: Vec<AgentCred>,
        index: usize,
    ) -> anyhow::Result<Self> {
        let server: SocketAddr = base
            .trim_start_matches("http://")
            .parse()
            .context("server address")?;
        let src: Vec<IpAddr> = src_ips
            .iter()
            .map(|s| s.parse())
            .collect::<Result<_, _>>()?;
        let http = src
            .iter()
            .map(|ip| {
                reqwest::Client::builder()
                    .local_address(*ip)
                    .no_proxy()
                    .pool_max_idle_per_host(64)
                    .timeout(Duration::from_secs(60))
                    .build()
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            base,
            server,
            site_key,
            relay,
            src,
            index,
            http,
            agents: agents
                .into_iter()
                .map(|cred| Agent {
                    cred,
                    tx: None,
                    convs: vec![],
                })
                .collect(),
            visitors: vec![],
            stats: Stats::new(),
            next_src: 0,
            talk: util::Talk::new(index as u64),
        })
    }

    fn src(&mut self) -> IpAddr {
        self.next_src += 1;
        self.src[self.next_src % self.src.len()]
    }

    fn ws_base(&self) -> String {
        self.base.replacen("http://", "ws://", 1)
    }

    async fn handle(&mut self, cmd: Cmd) -> anyhow::Result<Value> {
        match cmd {
            Cmd::Visitors { n, conversations } => self.visitors(n, conversations).await,
            Cmd::Connect { concurrency } => self.connect(concurrency).await,
            Cmd::Rate {
                step,
                rate,
                secs,
                start_ns,
                drain_secs,
            } => self.rate(step, rate, secs, start_ns, drain_secs).await,
            Cmd::Drop => {
                for v in &mut self.visitors {
                    v.tx = None;
                }
                // Give the tasks a moment to notice and drop their sockets.
                tokio::time::sleep(Duration::from_millis(200)).await;
                Ok(json!({"dropped": self.visitors.len()}))
            }
            Cmd::Post { per_conv } => self.post(per_conv).await,
            Cmd::Resume { timeout_secs } => self.resume(timeout_secs).await,
            Cmd::BusyDay {
                conversations,
                messages,
                concurrency,
            } => self.busy_day(conversations, messages, concurrency).await,
            Cmd::Close => {
                let s = &self.stats;
                let summary = json!({
                    "errors": s.errors.load(Relaxed), "closed": s.closed.load(Relaxed),
                    "resyncs": s.resyncs.load(Relaxed),
                    "first_error": s.first_error.lock().unwrap().clone(),
                });
                for v in &mut self.visitors {
                    if let Some(tx) = v.tx.take() {
                        let _ = tx.send(VCmd::Close);
                    }
                }
                for a in &mut self.agents {
                    a.tx = None;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
                Ok(summary)
            }
            Cmd::Init { .. } | Cmd::Quit => unreachable!(),
        }
    }

    // ------------------------------------------------------------ set-up

    async fn visitors(&mut self, n: usize, with_conv: bool) -> anyhow::Result<Value> {
        let start = self.visitors.len();
        let n_agents = self.agents.len().max(1);
        let made: Vec<anyhow::Result<(String, i64)>> = if self.relay {
            (0..n)
                .map(|i| {
                    let k = start + i;
                    Ok((
                        format!("v:{}:{k}", self.index),
                        (self.index as i64) * 1_000_000 + k as i64 + 1,
                    ))
                })
                .collect()
        } else {
            let jobs: Vec<_> = (0..n)
                .map(|i| {
                    let http = self.http[(start + i) % self.http.len()].clone();
                    let base = self.base.clone();
                    let key = self.site_key.clone();
                    let agent = self
                        .agents
                        .get((start + i) % n_agents)
                        .map(|a| a.cred.clone());
                    async move {
                        let (token, _) = visitor_session(&http, &base, &key).await?;
                        let conv = if with_conv {
                            let c = start_conversation(&http, &base, &token).await?;
                            if let Some(a) = agent {
                                assign(&http, &base, &a, c).await?;
                            }
                            c
                        } else {
                            0
                        };
                        Ok((token, conv))
                    }
                })
                .collect();
            stream::iter(jobs).buffered(32).collect().await
        };
        for (i, r) in made.into_iter().enumerate() {
            let (token, conv) = r?;
            let agent = (start + i) % n_agents;
            if with_conv {
                if let Some(a) = self.agents.get_mut(agent) {
                    a.convs.push(conv);
                }
            }
            self.visitors.push(Visitor {
                st: Arc::new(VisitorState {
                    token,
                    conv,
                    last: 0.into(),
                    expected: 0.into(),
                }),
                tx: None,
                agent,
            });
        }
        Ok(json!({"visitors": self.visitors.len()}))
    }

    async fn connect_agents(&mut self) -> anyhow::Result<()> {
        let url = format!("{}/api/v1/ws", self.ws_base());
        for i in 0..self.agents.len() {
            if self.agents[i].tx.is_some() {
                continue;
            }
            let src = self.src();
            let a = &self.agents[i];
            let (headers, hello) = if self.relay {
                (vec![], Some(format!("a:{}", a.cred.id)))
            } else {
                (
                    vec![
                        ("origin", self.base.clone()),
                        ("cookie", a.cred.cookie.clone()),
                    ],
                    None,
                )
            };
            let ws = client::connect(&url, self.server, src, &headers).await?;
            let (tx, rx) = mpsc::unbounded_channel();
            let (rtx, rrx) = oneshot::channel();
            tokio::spawn(client::run_agent(ws, hello, rx, self.stats.clone(), rtx));
            tokio::time::timeout(Duration::from_secs(20), rrx)
                .await
                .map_err(|_| anyhow!("agent ready timed out"))?
                .map_err(|_| {
                    anyhow!(
                        "agent socket ended before ready: {:?}",
                        self.stats.first_error.lock().unwrap()
                    )
                })?;
            for c in &a.convs {
                let _ = tx.send(ACmd::Subscribe(*c));
            }
            self.agents[i].tx = Some(tx);
        }
        Ok(())
    }

    fn visitor_url(&self) -> String {
        format!(
            "{}/api/v1/widget/ws?site_key={}",
            self.ws_base(),
            self.site_key
        )
    }

    async fn connect(&mut self, concurrency: usize) -> anyhow::Result<Value> {
        self.connect_agents().await?;
        let t0 = Instant::now();
        let url = self.visitor_url();
        let headers = vec![("origin", self.base.clone())];
        let idle: Vec<usize> = (0..self.visitors.len())
            .filter(|i| self.visitors[*i].tx.is_none())
            .collect();
        let todo: Vec<(usize, IpAddr)> = idle.into_iter().map(|i| (i, self.src())).collect();
        let results: Vec<(usize, anyhow::Result<mpsc::UnboundedSender<VCmd>>)> =
            stream::iter(todo.into_iter().map(|(i, src)| {
                let st = self.visitors[i].st.clone();
                let (url, headers, server, stats) = (
                    url.clone(),
                    headers.clone(),
                    self.server,
                    self.stats.clone(),
                );
                async move {
                    (
                        i,
                        open_visitor(&url, server, src, &headers, st, stats, 1).await,
                    )
                }
            }))
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        let secs = t0.elapsed().as_secs_f64();
        let mut failed = 0;
        let mut first_err = None;
        for (i, r) in results {
            match r {
                Ok(tx) => self.visitors[i].tx = Some(tx),
                Err(e) => {
                    failed += 1;
                    first_err.get_or_insert(format!("{e:#}"));
                }
            }
        }
        if failed > 0 {
            bail!(
                "{failed} visitor sockets failed to connect; first: {}",
                first_err.unwrap_or_default()
            );
        }
        Ok(json!({"secs": secs, "connected": self.visitors.len()}))
    }

    // ------------------------------------------------------------ throughput

    async fn rate(
        &mut self,
        step: usize,
        rate: f64,
        secs: f64,
        start_ns: u64,
        drain_secs: f64,
    ) -> anyhow::Result<Value> {
        self.stats.reset();
        let total = (rate * secs).round() as u64;
        let nv = self.visitors.len() as u64;
        // Visitors take turns in an order of their own, not in the order their
        // conversations were made: neighbours in time are not neighbours in the tables.
        let turns = self.talk.shuffled(self.visitors.len());
        let (mut sent_v, mut sent_a) = (0u64, 0u64);
        // The clock waits for the common start.
        let mut pacer = util::Pacer::start(start_ns, rate, total).context("the pacer's timer")?;
        while let Some((i, at)) = pacer.next().await.context("the pacer's timer")? {
            let v = &self.visitors[turns[((i / 2) % nv) as usize]];
            if i.is_multiple_of(2) {
                if let Some(tx) = &v.tx {
                    let _ = tx.send(VCmd::Send {
                        client_id: self.talk.client_id("w"),
                        body: util::body(at, 'v', &format!("{step}-{i}"), &self.talk.line('v')),
                        done: None,
                    });
                    sent_v += 1;
                }
            } else if let Some(tx) = &self.agents[v.agent].tx {
                let _ = tx.send(ACmd::Send {
                    conv: v.st.conv,
                    client_id: self.talk.client_id("a"),
                    body: util::body(at, 'a', &format!("{step}-{i}"), &self.talk.line('a')),
                    done: None,
                });
                sent_a += 1;
            }
        }
        let end_sched = now_ns();
        // Drain: wait for every ack and delivery, or the drain time.
        let deadline = Instant::now() + Duration::from_secs_f64(drain_secs);
        let s = &self.stats;
        loop {
            let acked = s.acked_v.load(Relaxed) + s.acked_a.load(Relaxed);
            let errs = s.errors.load(Relaxed);
            let deliv = s.deliv_v2a.load(Relaxed) + s.deliv_a2v.load(Relaxed);
            if (acked + errs >= sent_v + sent_a && deliv >= acked) || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let last_ack = s.last_ack_ns.load(Relaxed);
        Ok(json!({
            "sent_v": sent_v, "sent_a": sent_a,
            "acked_v": s.acked_v.load(Relaxed), "acked_a": s.acked_a.load(Relaxed),
            "deliv_v2a": s.deliv_v2a.load(Relaxed), "deliv_a2v": s.deliv_a2v.load(Relaxed),
            "dup": s.dup.load(Relaxed), "gap": s.gap.load(Relaxed),
            "errors": s.errors.load(Relaxed), "resyncs": s.resyncs.load(Relaxed),
            "first_error": s.first_error.lock().unwrap().clone(),
            "sched_end_ns": end_sched, "last_ack_ns": last_ack,
            "v2a": util::hist_to_b64(&s.v2a.lock().unwrap()),
            "a2v": util::hist_to_b64(&s.a2v.lock().unwrap()),
            "ack": util::hist_to_b64(&s.ack.lock().unwrap()),
        }))
    }

    // ------------------------------------------------------------ reconnect storm

    async fn post(&mut self, per_conv: usize) -> anyhow::Result<Value> {
        // At most ~100 sends in flight per worker: the server's socket loop stops reading
        // (and so stops draining its own acks) once a socket has 256 + 64 sends queued,
        // so a client that pipelines more than that hangs its socket (see
        // docs/performance.md).
        let mut posted = 0;
        let idx: Vec<usize> = (0..self.visitors.len()).collect();
        for chunk in idx.chunks(100usize.div_ceil(per_conv.max(1)).max(1)) {
            let mut waits = Vec::new();
            for &k in chunk {
                let v = &self.visitors[k];
                let Some(tx) = &self.agents[v.agent].tx else {
                    bail!("agent not connected")
                };
                for j in 0..per_conv {
                    let (dtx, drx) = oneshot::channel();
                    let _ = tx.send(ACmd::Send {
                        conv: v.st.conv,
                        client_id: self.talk.client_id("a"),
                        body: util::body(
                            now_ns(),
                            'a',
                            &format!("storm-{k}-{j}"),
                            &self.talk.line('a'),
                        ),
                        done: Some(dtx),
                    });
                    waits.push((k, drx));
                }
            }
            for (k, rx) in waits {
                let a = tokio::time::timeout(Duration::from_secs(60), rx)
                    .await
                    .map_err(|_| anyhow!("post ack timed out"))?
                    .map_err(|_| anyhow!("agent socket gone"))?
                    .map_err(|e| anyhow!("post refused: {e}"))?;
                let vis = a.visible_seq.unwrap_or(a.seq);
                self.visitors[k].st.expected.fetch_max(vis, Relaxed);
                posted += 1;
            }
        }
        Ok(json!({"posted": posted}))
    }

    async fn resume(&mut self, timeout_secs: f64) -> anyhow::Result<Value> {
        self.stats.reset();
        let url = self.visitor_url();
        let headers = vec![("origin", self.base.clone())];
        let t0 = now_ns();
        let mut tasks = Vec::new();
        for k in 0..self.visitors.len() {
            let st = self.visitors[k].st.clone();
            let src = self.src();
            let (url, headers, server, stats) = (
                url.clone(),
                headers.clone(),
                self.server,
                self.stats.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let tx = open_visitor(&url, server, src, &headers, st.clone(), stats, 8).await?;
                let want = st.expected.load(Relaxed);
                let (wtx, wrx) = oneshot::channel();
                let _ = tx.send(VCmd::WaitSeq(want, wtx));
                tokio::time::timeout(Duration::from_secs_f64(timeout_secs), wrx)
                    .await
                    .map_err(|_| anyhow!("not caught up: at {} of {want}", st.last.load(Relaxed)))?
                    .map_err(|_| anyhow!("socket ended before catching up"))?;
                Ok::<_, anyhow::Error>((tx, now_ns()))
            }));
        }
        let mut done_max = 0u64;
        let mut behind = 0u64;
        let mut first_err = None;
        for (k, t) in tasks.into_iter().enumerate() {
            match t.await? {
                Ok((tx, at)) => {
                    self.visitors[k].tx = Some(tx);
                    done_max = done_max.max(at);
                }
                Err(e) => {
                    behind += 1;
                    first_err.get_or_insert(format!("{e:#}"));
                }
            }
        }
        // Let stray duplicates, if any, arrive before counting.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let s = &self.stats;
        let lost: i64 = self
            .visitors
            .iter()
            .map(|v| (v.st.expected.load(Relaxed) - v.st.last.load(Relaxed)).max(0))
            .sum();
        Ok(json!({
            "start_ns": t0, "done_ns": done_max, "behind": behind, "lost": lost,
            "dup": s.dup.load(Relaxed), "gap": s.gap.load(Relaxed),
            "errors": s.errors.load(Relaxed), "first_error": first_err.or(s.first_error.lock().unwrap().clone()),
            "delivered": s.deliv_a2v.load(Relaxed),
        }))
    }

    // ------------------------------------------------------------ busy day

    async fn busy_day(
        &mut self,
        n: usize,
        messages: usize,
        concurrency: usize,
    ) -> anyhow::Result<Value> {
        self.connect_agents().await?;
        self.stats.reset();
        let per_side = messages.div_ceil(2);
        let agents: Vec<(AgentCred, mpsc::UnboundedSender<ACmd>)> = self
            .agents
            .iter()
            .filter_map(|a| a.tx.clone().map(|t| (a.cred.clone(), t)))
            .collect();
        if agents.is_empty() {
            bail!("no agent connected");
        }
        let ctx = Arc::new(DayCtx {
            base: self.base.clone(),
            site_key: self.site_key.clone(),
            url: self.visitor_url(),
            server: self.server,
            stats: self.stats.clone(),
            per_side,
        });
        let t0 = Instant::now();
        let jobs: Vec<_> = (0..n)
            .map(|i| {
                let (cred, atx) = agents[i % agents.len()].clone();
                let http = self.http[i % self.http.len()].clone();
                let src = self.src[i % self.src.len()];
                let ctx = ctx.clone();
                let tag = format!("d{}-{i}", self.index);
                let talk = util::Talk::new(((self.index as u64) << 32) | i as u64);
                async move { one_conversation(&ctx, &http, src, &cred, &atx, &tag, talk).await }
            })
            .collect();
        let results: Vec<anyhow::Result<u64>> = stream::iter(jobs)
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        let secs = t0.elapsed().as_secs_f64();
        let mut failed = 0;
        let mut requests = 0;
        let mut first_err = None;
        for r in results {
            match r {
                Ok(n) => requests += n,
                Err(e) => {
                    failed += 1;
                    first_err.get_or_insert(format!("{e:#}"));
                }
            }
        }
        let s = &self.stats;
        Ok(json!({
            "secs": secs, "conversations": n, "failed": failed, "first_error": first_err,
            "http_requests": requests,
            "acked": s.acked_v.load(Relaxed) + s.acked_a.load(Relaxed),
            "dup": s.dup.load(Relaxed), "gap": s.gap.load(Relaxed),
            "errors": s.errors.load(Relaxed),
            "ack": util::hist_to_b64(&s.ack.lock().unwrap()),
        }))
    }
}

struct DayCtx {
    base: String,
    site_key: String,
    url: String,
    server: SocketAddr,
    stats: Arc<Stats>,
    /// Messages each side sends.
    per_side: usize,
}

/// One conversation of the busy day, start to close. Returns the HTTP requests made.
async fn one_conversation(
    ctx: &DayCtx,
    http: &reqwest::Client,
    src: IpAddr,
    agent: &AgentCred,
    atx: &mpsc::UnboundedSender<ACmd>,
    tag: &str,
    mut talk: util::Talk,
) -> anyhow::Result<u64> {
    let base = &ctx.base;
    // The page loads the widget, as a browser on its first visit does: nothing cached,
    // gzip taken (the bytes are counted, not unzipped: that is the browser's work).
    let script = http
        .get(format!("{base}/widget.js"))
        .header("accept-encoding", "gzip, deflate, br, zstd")
        .send()
        .await?;
    if !script.status().is_success() {
        bail!("/widget.js: {}", script.status());
    }
    script.bytes().await?;
    ok(http
        .get(format!(
            "{base}/api/v1/widget/config?site_key={}",
            ctx.site_key
        ))
        .header("origin", base)
        .send()
        .await?)
    .await?;
    let (token, _) = visitor_session(http, base, &ctx.site_key).await?;
    for p in ["/pricing", "/help"] {
        ok(http
            .post(format!("{base}/api/v1/widget/page-views"))
            .header("origin", base)
            .bearer_auth(&token)
            .json(&json!({"url": format!("{base}{p}"), "title": "Page"}))
            .send()
            .await?)
        .await?;
    }
    let conv = start_conversation(http, base, &token).await?;
    let st = Arc::new(VisitorState {
        token,
        conv,
        last: 0.into(),
        expected: 0.into(),
    });
    let vtx = open_visitor(
        &ctx.url,
        ctx.server,
        src,
        &[("origin", base.clone())],
        st.clone(),
        ctx.stats.clone(),
        3,
    )
    .await?;
    let _ = atx.send(ACmd::Subscribe(conv));
    let mut last_vis = 0;
    for j in 0..ctx.per_side {
        let (d, r) = oneshot::channel();
        let _ = vtx.send(VCmd::Send {
            client_id: talk.client_id("w"),
            body: util::body(now_ns(), 'v', &format!("{tag}-q{j}"), &talk.line('v')),
            done: Some(d),
        });
        r.await
            .map_err(|_| anyhow!("visitor socket gone"))?
            .map_err(|e| anyhow!("visitor send refused: {e}"))?;
        if j == 0 {
            assign(http, base, agent, conv).await?;
        }
        let (d, r) = oneshot::channel();
        let _ = atx.send(ACmd::Send {
            conv,
            client_id: talk.client_id("a"),
            body: util::body(now_ns(), 'a', &format!("{tag}-a{j}"), &talk.line('a')),
            done: Some(d),
        });
        let a = r
            .await
            .map_err(|_| anyhow!("agent socket gone"))?
            .map_err(|e| anyhow!("agent send refused: {e}"))?;
        last_vis = a.visible_seq.unwrap_or(a.seq);
    }
    // Both sides must have everything before the agent closes the chat.
    let (d, r) = oneshot::channel();
    let _ = vtx.send(VCmd::WaitSeq(last_vis, d));
    tokio::time::timeout(Duration::from_secs(30), r)
        .await
        .map_err(|_| {
            anyhow!(
                "visitor never got the agent's messages (at {} of {last_vis})",
                st.last.load(Relaxed)
            )
        })??;
    let (d, r) = oneshot::channel();
    let _ = atx.send(ACmd::WaitVisitorMsgs(conv, ctx.per_side as u64, d));
    tokio::time::timeout(Duration::from_secs(30), r)
        .await
        .map_err(|_| anyhow!("agent never got the visitor's messages"))??;
    ok(agent_req(
        http.post(format!("{base}/api/v1/conversations/{conv}/close")),
        base,
        agent,
    )
    .send()
    .await?)
    .await?;
    let _ = atx.send(ACmd::Unsubscribe(conv));
    let _ = vtx.send(VCmd::Close);
    Ok(7)
}

/// Connects a visitor socket and waits for `ready`, retrying a failed connect.
async fn open_visitor(
    url: &str,
    server: SocketAddr,
    src: IpAddr,
    headers: &[(&'static str, String)],
    st: Arc<VisitorState>,
    stats: Arc<Stats>,
    tries: u32,
) -> anyhow::Result<mpsc::UnboundedSender<VCmd>> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let r = async {
            let ws = client::connect(url, server, src, headers).await?;
            let (tx, rx) = mpsc::unbounded_channel();
            let (rtx, rrx) = oneshot::channel();
            tokio::spawn(client::run_visitor(ws, st.clone(), rx, stats.clone(), rtx));
            tokio::time::timeout(Duration::from_secs(30), rrx)
                .await
                .map_err(|_| anyhow!("no ready in 30 s"))?
                .map_err(|_| anyhow!("socket ended before ready"))?;
            Ok::<_, anyhow::Error>(tx)
        }
        .await;
        match r {
            Ok(tx) => return Ok(tx),
            Err(e) if attempt >= tries => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await,
        }
    }
}

async fn ok(r: reqwest::Response) -> anyhow::Result<Value> {
    let status = r.status();
    let url = r.url().path().to_owned();
    let text = r.text().await?;
    if !status.is_success() {
        bail!("{url}: {status}: {text}");
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

pub async fn visitor_session(
    http: &reqwest::Client,
    base: &str,
    site_key: &str,
) -> anyhow::Result<(String, Value)> {
    let v = ok(http
        .post(format!("{base}/api/v1/widget/sessions"))
        .header("origin", base)
        .json(&json!({"site_key": site_key}))
        .send()
        .await?)
    .await?;
    let token = v["token"]
        .as_str()
        .ok_or_else(|| anyhow!("no token"))?
        .to_owned();
    Ok((token, v))
}

async fn start_conversation(
    http: &reqwest::Client,
    base: &str,
    token: &str,
) -> anyhow::Result<i64> {
    let v = ok(http
        .post(format!("{base}/api/v1/widget/conversations"))
        .header("origin", base)
        .bearer_auth(token)
        .json(&json!({"url": format!("{base}/pricing"), "consent": true}))
        .send()
        .await?)
    .await?;
    v["id"]
        .as_i64()
        .ok_or_else(|| anyhow!("no conversation id"))
}

fn agent_req(rb: reqwest::RequestBuilder, base: &str, a: &AgentCred) -> reqwest::RequestBuilder {
    rb.header("origin", base)
        .header("cookie", &a.cookie)
        .header("x-csrf-token", &a.csrf)
}

async fn assign(
    http: &reqwest::Client,
    base: &str,
    a: &AgentCred,
    conv: i64,
) -> anyhow::Result<()> {
    ok(agent_req(
        http.post(format!("{base}/api/v1/conversations/{conv}/assign")),
        base,
        a,
    )
    .json(&json!({"assignee_id": a.id}))
    .send()
    .await?)
    .await?;
    Ok(())
}
