//! `confab-bench`: an open-loop load generator for Confab over its real visitor and agent
//! protocols, with the machine's ceilings measured in the same run. See docs/performance.md.

mod ceiling;
mod client;
mod procs;
mod relay;
mod report;
mod setup;
mod store_alone;
mod util;
mod wal;
mod worker;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};

use procs::{first_error, max, sum, Pool, Server};
use util::r2;
use worker::Cmd;

#[derive(Parser)]
#[command(
    name = "confab-bench",
    about = "Load generator and ceilings for Confab"
)]
struct Cli {
    /// The server binary to test (default: `confab` beside this binary).
    #[arg(long, global = true)]
    server_bin: Option<PathBuf>,
    /// Tiny numbers, seconds per scenario; fails only on real errors (loss, duplicates).
    #[arg(long, global = true)]
    smoke: bool,
    /// Where results go (default bench/results, or target/bench-smoke with --smoke).
    #[arg(long, global = true)]
    out: Option<PathBuf>,
    /// Skip the ceiling runs beside each scenario.
    #[arg(long, global = true)]
    no_ceiling: bool,
    /// Take no copies of the database's log in throughput steps (they cost the load
    /// generator a read of the whole log twice a second; for comparisons of latency).
    #[arg(long, global = true)]
    no_log_copies: bool,
    #[command(subcommand)]
    cmd: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Idle visitor sockets: server memory per connection and time to connect them all.
    Connections(ConnArgs),
    /// Visitors and agents chatting at stepped fixed rates: sustained rate and latency.
    Throughput(TputArgs),
    /// Every visitor drops at once and resumes: time to catch up, nothing lost or repeated.
    Reconnect(StormArgs),
    /// 10,000 conversations with widget loads, page views, assignments and closes.
    BusyDay(DayArgs),
    /// Only the ceilings: raw SQLite group commit and the bare WebSocket relay.
    Ceiling(AllArgs),
    /// Every scenario, each with its ceiling.
    All(AllArgs),
    /// Only Confab's store, driven in this process at the throughput scenario's rates
    /// (the throughput ceilings run it too); prints its steps as JSON.
    StoreAlone(TputArgs),
    #[command(hide = true)]
    Worker,
    #[command(hide = true)]
    Relay {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
        /// Persist every message (the storage ceiling's group commit) before its ack.
        #[arg(long)]
        store: Option<PathBuf>,
    },
}

#[derive(Args, Clone)]
struct ConnArgs {
    /// Idle visitor connections (default 19000; smoke 200).
    #[arg(long)]
    n: Option<usize>,
    /// Worker processes (default 4).
    #[arg(long)]
    workers: Option<usize>,
    /// How long to hold them open, across server heartbeats (default 30 s; smoke 1 s).
    #[arg(long)]
    hold_secs: Option<f64>,
}

#[derive(Args, Clone)]
struct TputArgs {
    /// Visitors, each in its own conversation (default 1000; smoke 20).
    #[arg(long)]
    visitors: Option<usize>,
    /// Agents (default 8; smoke 2).
    #[arg(long)]
    agents: Option<usize>,
    /// Total offered rates in messages/s, half from visitors and half from agents.
    #[arg(long, value_delimiter = ',')]
    rates: Option<Vec<f64>>,
    /// Seconds per step (default 10; smoke 2).
    #[arg(long)]
    step_secs: Option<f64>,
    #[arg(long)]
    workers: Option<usize>,
}

#[derive(Args, Clone)]
struct StormArgs {
    /// Visitors that drop and resume at once (default 10000; smoke 100).
    #[arg(long)]
    n: Option<usize>,
    /// Agent messages posted to each conversation while its visitor is away (default 2).
    #[arg(long)]
    per_conv: Option<usize>,
    #[arg(long)]
    workers: Option<usize>,
}

#[derive(Args, Clone)]
struct DayArgs {
    /// Conversations (default 10000; smoke 40).
    #[arg(long)]
    conversations: Option<usize>,
    /// Messages per conversation, half each side (default 20).
    #[arg(long)]
    messages: Option<usize>,
    /// Conversations in flight at once (default 200; smoke 10).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Agents (default 8; smoke 2).
    #[arg(long)]
    agents: Option<usize>,
    #[arg(long)]
    workers: Option<usize>,
}

#[derive(Args, Clone, Default)]
struct AllArgs {}

#[derive(Clone)]
struct Ctx {
    bin: PathBuf,
    smoke: bool,
    ceiling: bool,
    /// Whether throughput steps copy the database's log (not with `--no-log-copies`).
    log_copies: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let nofile = util::raise_nofile();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match cli.cmd {
        Scenario::Worker => return rt.block_on(worker::main()),
        Scenario::Relay {
            ref listen,
            ref store,
        } => return rt.block_on(relay::run(listen, store.as_deref())),
        Scenario::StoreAlone(ref a) => {
            let rates = a.rates.clone().unwrap_or_else(default_rates);
            let (v, n) = (a.visitors.unwrap_or(1000), a.agents.unwrap_or(8));
            let r = rt.block_on(store_alone::run(v, n, &rates, a.step_secs.unwrap_or(10.0)))?;
            println!("{}", serde_json::to_string_pretty(&r)?);
            return Ok(());
        }
        _ => {}
    }
    let bin = match &cli.server_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()?
            .parent()
            .ok_or_else(|| anyhow!("no exe dir"))?
            .join("confab"),
    };
    if !bin.exists() {
        anyhow::bail!(
            "server binary {} not found (build it, or pass --server-bin)",
            bin.display()
        );
    }
    let out = cli.out.clone().unwrap_or_else(|| {
        if cli.smoke {
            PathBuf::from("target/bench-smoke")
        } else {
            PathBuf::from("bench/results")
        }
    });
    let ctx = Ctx {
        bin,
        smoke: cli.smoke,
        ceiling: !cli.no_ceiling,
        log_copies: !cli.no_log_copies,
    };
    eprintln!(
        "confab-bench: open files limit {nofile}; server {}",
        ctx.bin.display()
    );
    let results = rt.block_on(async {
        let mut res: Vec<(&'static str, anyhow::Result<Value>)> = Vec::new();
        let c = &ctx;
        match cli.cmd {
            Scenario::Connections(a) => res.push(("connections", connections(c, &a).await)),
            Scenario::Throughput(a) => res.push(("throughput", throughput(c, &a).await)),
            Scenario::Reconnect(a) => res.push(("reconnect", reconnect(c, &a).await)),
            Scenario::BusyDay(a) => res.push(("busy_day", busy_day(c, &a).await)),
            Scenario::Ceiling(_) => res.push(("ceiling", ceiling_only(c).await)),
            Scenario::All(_) => {
                res.push((
                    "ceiling",
                    ceiling_only(&Ctx {
                        ceiling: false,
                        ..c.clone()
                    })
                    .await,
                ));
                res.push(("connections", connections(c, &conn_defaults()).await));
                res.push(("throughput", throughput(c, &tput_defaults()).await));
                res.push(("reconnect", reconnect(c, &storm_defaults()).await));
                res.push(("busy_day", busy_day(c, &day_defaults()).await));
            }
            Scenario::Worker | Scenario::Relay { .. } | Scenario::StoreAlone(_) => unreachable!(),
        }
        res
    });
    let (passed, failed) = report::write(&out, ctx.smoke, &ctx.bin, results)?;
    println!(
        "{}: {passed} passed, {failed} failed",
        if ctx.smoke { "bench smoke" } else { "bench" }
    );
    if failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}

/// The throughput scenario's rates: finer steps where Confab and the persisting relay
/// reach their limits.
fn default_rates() -> Vec<f64> {
    vec![
        1000.0, 2000.0, 5000.0, 7500.0, 8750.0, 10000.0, 12500.0, 15000.0, 17500.0, 20000.0,
        22500.0, 25000.0, 30000.0,
    ]
}

fn conn_defaults() -> ConnArgs {
    ConnArgs {
        n: None,
        workers: None,
        hold_secs: None,
    }
}
fn tput_defaults() -> TputArgs {
    TputArgs {
        visitors: None,
        agents: None,
        rates: None,
        step_secs: None,
        workers: None,
    }
}
fn storm_defaults() -> StormArgs {
    StormArgs {
        n: None,
        per_conv: None,
        workers: None,
    }
}
fn day_defaults() -> DayArgs {
    DayArgs {
        conversations: None,
        messages: None,
        concurrency: None,
        agents: None,
        workers: None,
    }
}

fn pick<T: Copy>(v: Option<T>, full: T, smoke: T, is_smoke: bool) -> T {
    v.unwrap_or(if is_smoke { smoke } else { full })
}

/// A fresh server on a fresh data folder, set up with `agents` agents.
async fn fresh(
    c: &Ctx,
    agents: usize,
) -> anyhow::Result<(Server, setup::Setup, tempfile::TempDir)> {
    let dir = tempfile::Builder::new().prefix("confab-bench-").tempdir()?;
    let server = Server::confab(&c.bin, dir.path()).await?;
    let s = setup::run(&server.base, agents)
        .await
        .context("set-up over HTTP")?;
    Ok((server, s, dir))
}

/// Agents for the relay, which checks nobody: ids only.
fn fake_agents(n: usize) -> Vec<worker::AgentCred> {
    (0..n)
        .map(|i| worker::AgentCred {
            id: i as i64 + 1,
            cookie: String::new(),
            csrf: String::new(),
        })
        .collect()
}

/// Fails on any sign of loss, duplication or error.
fn check(v: &Value, keys: &[&str]) -> anyhow::Result<()> {
    for k in keys {
        let n = v[*k].as_f64().unwrap_or(0.0);
        if n > 0.0 {
            anyhow::bail!("{k} = {n} (first error: {})", v["first_error"]);
        }
    }
    Ok(())
}

// -------------------------------------------------------------------- connections

async fn connections(c: &Ctx, a: &ConnArgs) -> anyhow::Result<Value> {
    let n = pick(a.n, 19_000, 200, c.smoke);
    let workers = pick(a.workers, 4, 2, c.smoke);
    let hold = pick(a.hold_secs, 30.0, 1.0, c.smoke);
    eprintln!("connections: {n} idle visitors over {workers} workers");
    let (server, s, _dir) = fresh(c, 0).await?;
    let confab = idle_run(&server, &s.site_key, false, n, workers, hold, &[]).await;
    server.stop().await;
    let confab = confab?;
    let mut out =
        json!({"params": {"n": n, "workers": workers, "hold_secs": hold}, "confab": confab});
    if c.ceiling {
        let relay = Server::relay(None).await?;
        let r = idle_run(&relay, "relay", true, n, workers, hold, &[]).await;
        relay.stop().await;
        out["ceiling"] = r?;
    }
    check(&out["confab"], &["errors", "closed"])?;
    Ok(out)
}

async fn idle_run(
    server: &Server,
    site_key: &str,
    relay: bool,
    n: usize,
    workers: usize,
    hold: f64,
    agents: &[worker::AgentCred],
) -> anyhow::Result<Value> {
    let mut pool = Pool::start(workers, 2, &server.base, site_key, relay, agents).await?;
    let t = Instant::now();
    pool.all(|i| Cmd::Visitors {
        n: n / workers + usize::from(i < n % workers),
        conversations: false,
    })
    .await?;
    let sessions_secs = t.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss0 = util::rss_kib(server.pid);
    let t = Instant::now();
    let r = pool.all(|_| Cmd::Connect { concurrency: 256 }).await?;
    let connect_secs = t.elapsed().as_secs_f64();
    let connected = sum(&r, "connected");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss1 = util::rss_kib(server.pid);
    tokio::time::sleep(Duration::from_secs_f64(hold)).await;
    let rss2 = util::rss_kib(server.pid);
    let end = pool.all(|_| Cmd::Close).await?;
    pool.quit().await;
    let per_conn =
        |after: u64| (after.saturating_sub(rss0) as f64 * 1024.0 / connected.max(1.0)).round();
    Ok(json!({
        "connected": connected,
        "sessions_secs": r2(sessions_secs),
        "connect_secs": r2(connect_secs),
        "connects_per_s": (connected / connect_secs).round(),
        "rss_before_kib": rss0, "rss_after_kib": rss1, "rss_after_hold_kib": rss2,
        "bytes_per_conn": per_conn(rss1),
        "bytes_per_conn_after_hold": per_conn(rss2),
        "errors": sum(&end, "errors"), "closed": sum(&end, "closed"),
        "first_error": first_error(&end),
    }))
}

// -------------------------------------------------------------------- throughput

async fn throughput(c: &Ctx, a: &TputArgs) -> anyhow::Result<Value> {
    let visitors = pick(a.visitors, 1000, 20, c.smoke);
    let agents = pick(a.agents, 8, 2, c.smoke);
    let workers = pick(a.workers, 2, 2, c.smoke).min(agents);
    let secs = pick(a.step_secs, 10.0, 2.0, c.smoke);
    let rates = a.rates.clone().unwrap_or_else(|| {
        if c.smoke {
            vec![100.0, 200.0]
        } else {
            default_rates()
        }
    });
    eprintln!("throughput: {visitors} visitors, {agents} agents, rates {rates:?}");
    let (mut server, s, _dir) = fresh(c, agents).await?;
    // A server without a database file is one whose log the steps leave alone.
    server.db = server.db.filter(|_| c.log_copies);
    let r = rate_run(
        &server,
        &s.site_key,
        false,
        &s.agents,
        visitors,
        workers,
        &rates,
        secs,
        c.smoke,
    )
    .await;
    server.stop().await;
    let mut out = json!({"params": {"visitors": visitors, "agents": agents, "workers": workers, "step_secs": secs, "rates": rates}, "confab": r?});
    if c.ceiling {
        let relay = Server::relay(None).await?;
        let fake = fake_agents(agents);
        let r = rate_run(
            &relay, "relay", true, &fake, visitors, workers, &rates, secs, c.smoke,
        )
        .await;
        relay.stop().await;
        out["ceiling"] = r?;
        // Both halves in one process: the relay persisting every message before its ack,
        // the least a persisted, acknowledged, delivered message costs here.
        let d = tempfile::tempdir()?;
        let mut durable = Server::relay(Some(d.path())).await?;
        durable.db = durable.db.filter(|_| c.log_copies);
        let r = rate_run(
            &durable, "relay", true, &fake, visitors, workers, &rates, secs, c.smoke,
        )
        .await;
        durable.stop().await;
        out["ceiling"]["durable"] = r?;
        // The storage half: raw inserts at the same rates, open loop, so each step's
        // latency can be set beside the lowest the commit alone allows at that rate.
        let d = tempfile::tempdir()?;
        let mut storage = Vec::new();
        for (i, rate) in rates.iter().enumerate() {
            let dir = d.path().join(i.to_string()).tap_mkdir()?;
            storage.push(ceiling::sqlite_paced(&dir, *rate, secs.min(5.0)).await?);
        }
        out["ceiling"]["storage"] = json!(storage);
        // Confab's own store at the same rates, with the server around it removed.
        out["ceiling"]["store"] = store_alone::run(visitors, agents, &rates, secs).await?;
    }
    check(&out["confab"], &["errors", "dup", "gap", "lost"])?;
    if c.ceiling {
        // The persisting relay is new code of this suite's own: hold it to the same bar.
        check(
            &out["ceiling"]["durable"],
            &["errors", "dup", "gap", "lost"],
        )?;
    }
    // A log that could not be read is a broken measure, not a figure to leave out.
    for run in [&out["confab"], &out["ceiling"]["durable"]] {
        for st in run["steps"].as_array().into_iter().flatten() {
            if let Some(e) = st["log_mid_step"]["error"].as_str() {
                anyhow::bail!("the database log could not be read: {e}");
            }
        }
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
async fn rate_run(
    server: &Server,
    site_key: &str,
    relay: bool,
    agents: &[worker::AgentCred],
    visitors: usize,
    workers: usize,
    rates: &[f64],
    secs: f64,
    smoke: bool,
) -> anyhow::Result<Value> {
    let mut pool = Pool::start(workers, 2, &server.base, site_key, relay, agents).await?;
    let per = visitors.div_ceil(workers);
    pool.all(|_| Cmd::Visitors {
        n: per,
        conversations: true,
    })
    .await?;
    pool.all(|_| Cmd::Connect { concurrency: 128 }).await?;
    // Warm-up (not recorded): caches, first list rows, allocator.
    let start_ns = util::now_ns() + 300_000_000;
    pool.all(|w| Cmd::Rate {
        step: 999,
        rate: rates[0] / workers as f64,
        secs: 2.0,
        start_ns: phased(start_ns, w, workers),
        drain_secs: 10.0,
    })
    .await?;
    let mut steps = Vec::new();
    let (mut errors, mut dup, mut gap, mut lost) = (0.0, 0.0, 0.0, 0.0);
    let mut first_err = Value::Null;
    let mut best = 0.0f64;
    for (k, &rate) in rates.iter().enumerate() {
        let mut tries = vec![rate_step(&mut pool, server, k, rate, workers, secs).await?];
        // A failed step runs once more, for Confab and its ceilings alike: on this VM one
        // stall of the disk can fail a 10 s step (docs/performance.md, round 12). Only
        // speed gets a second chance: loss, duplicates and errors of either try count.
        if !tries[0].passed() && !smoke {
            eprintln!("  step {rate:>7} msg/s failed; once more");
            // Its own step number: the messages' client ids come from it.
            tries.push(rate_step(&mut pool, server, RETRY + k, rate, workers, secs).await?);
        }
        for t in &tries {
            errors += t.errors;
            dup += t.dup;
            gap += t.gap;
            lost += t.lost;
            if first_err.is_null() {
                first_err = t.first_error.clone();
            }
        }
        let last = tries.pop().expect("one try at least");
        if last.passed() {
            best = best.max(last.achieved);
        }
        let passed = last.passed();
        let mut json = last.json;
        if let Some(first) = tries.pop() {
            json["first_try"] = first.json;
        }
        steps.push(json);
        if !passed && !smoke {
            break;
        }
    }
    let _ = pool.all(|_| Cmd::Close).await;
    pool.quit().await;
    Ok(json!({
        "steps": steps, "best_sustained_per_s": best.round(),
        "errors": errors, "dup": dup, "gap": gap, "lost": lost, "first_error": first_err,
    }))
}

/// Sums up the copies of the log taken during a step, with the owners of their pages read
/// now (the step's writes are over; the server may still checkpoint).
async fn log_pages(
    copies: tokio::task::JoinHandle<anyhow::Result<wal::Copies>>,
    db: std::path::PathBuf,
) -> anyhow::Result<wal::Anatomy> {
    let copies = copies.await??;
    tokio::task::spawn_blocking(move || wal::explain(&copies, &db, "messages")).await?
}

/// CPU seconds of the load generator so far: its workers and this process (which copies
/// the database's log during steps).
fn load_generator_cpu(pool: &Pool) -> f64 {
    let workers: f64 = pool.workers.iter().map(|w| util::cpu_secs(w.pid)).sum();
    workers + util::cpu_secs(std::process::id())
}

/// Step numbers of second tries start here (the warm-up is step 999).
const RETRY: usize = 500;

/// One step of the throughput scenario, measured.
struct Step {
    json: Value,
    achieved: f64,
    p99: f64,
    sustained: bool,
    errors: f64,
    dup: f64,
    gap: f64,
    /// Acknowledged but not delivered (counted once everything was acknowledged).
    lost: f64,
    first_error: Value,
}

impl Step {
    /// Sustained, with p99 delivery within 50 ms.
    fn passed(&self) -> bool {
        self.sustained && self.p99 <= 50.0
    }
}

/// Worker `w`'s start: the workers' pacers tick a fraction of a tick apart (see
/// [`util::Ticks`]), so that with `n` workers the server gets a tick's messages in `n`
/// smaller bursts spread over the millisecond, not in one.
fn phased(start_ns: u64, w: usize, n: usize) -> u64 {
    start_ns + util::TICK_NS * w as u64 / n.max(1) as u64
}

/// Offers `rate` msg/s for `secs` (step number `k`) and measures what came of it.
async fn rate_step(
    pool: &mut Pool,
    server: &Server,
    k: usize,
    rate: f64,
    workers: usize,
    secs: f64,
) -> anyhow::Result<Step> {
    let start_ns = util::now_ns() + 300_000_000;
    let cpu0 = util::cpu_secs(server.pid);
    let gen0 = load_generator_cpu(pool);
    let (idle0, steal0) = util::machine_idle_steal();
    let written0 = util::written_bytes(server.pid);
    // Copies of the database's log through the middle half of the step (see `wal`).
    let log_copy = server.db.clone().map(|db| {
        let from = start_ns + (secs * 0.25e9) as u64;
        let until = start_ns + (secs * 0.75e9) as u64;
        let every = Duration::from_millis(500);
        (tokio::spawn(wal::watch(db.clone(), from, until, every)), db)
    });
    let t0 = Instant::now();
    let r = pool
        .all(|w| Cmd::Rate {
            step: k,
            rate: rate / workers as f64,
            secs,
            start_ns: phased(start_ns, w, workers),
            drain_secs: 10.0,
        })
        .await?;
    let cpu = util::cpu_secs(server.pid) - cpu0;
    let gen = load_generator_cpu(pool) - gen0;
    let (idle, steal) = util::machine_idle_steal();
    let (idle, steal) = (idle - idle0, steal - steal0);
    let written = util::written_bytes(server.pid).saturating_sub(written0);
    let wall = t0.elapsed().as_secs_f64();
    let mut h = [util::hist(), util::hist(), util::hist()];
    for w in &r {
        for (i, key) in ["v2a", "a2v", "ack"].iter().enumerate() {
            h[i].add(util::hist_from_b64(w[*key].as_str().unwrap_or(""))?)
                .ok();
        }
    }
    let sent = sum(&r, "sent_v") + sum(&r, "sent_a");
    let acked = sum(&r, "acked_v") + sum(&r, "acked_a");
    let deliv_v2a = sum(&r, "deliv_v2a");
    let deliv_a2v = sum(&r, "deliv_a2v");
    let last_ack = max(&r, "last_ack_ns");
    let span = ((last_ack - start_ns as f64) / 1e9).max(secs);
    let achieved = acked / span;
    let errors = sum(&r, "errors");
    let unacked = sent - acked - errors;
    let step_lost =
        (sum(&r, "acked_v") - deliv_v2a).max(0.0) + (sum(&r, "acked_a") - deliv_a2v).max(0.0);
    let (v2a, a2v, ack) = (util::lat(&h[0]), util::lat(&h[1]), util::lat(&h[2]));
    let p99 = v2a.p99_ms.max(a2v.p99_ms);
    let sustained = unacked <= 0.0 && achieved >= 0.95 * rate;
    let written_kib_per_msg = written as f64 / 1024.0 / acked.max(1.0);
    let log = match log_copy {
        Some((copies, db)) => Some(log_pages(copies, db).await),
        None => None,
    };
    eprintln!(
        "  step {rate:>7} msg/s: acked {acked} of {sent} at {:.0}/s; v→a p50 {:.2} p99 {:.2} p999 {:.2} ms; a→v p50 {:.2} p99 {:.2} ms; server CPU {:.2} cores, load generator {:.2}, idle {:.2}; wrote {:.2} KiB/msg",
        achieved,
        v2a.p50_ms,
        v2a.p99_ms,
        v2a.p999_ms,
        a2v.p50_ms,
        a2v.p99_ms,
        cpu / wall,
        gen / wall,
        idle / wall,
        written_kib_per_msg
    );
    let mut json = json!({
        "offered_per_s": rate, "sent": sent, "acked": acked, "unacked_after_drain": unacked.max(0.0),
        "acked_per_s": achieved.round(), "sustained": sustained,
        "visitor_to_agent": v2a, "agent_to_visitor": a2v, "send_to_ack": ack,
        "lost": step_lost, "dup": sum(&r, "dup"), "errors": errors, "resyncs": sum(&r, "resyncs"),
        "server_cpu_cores": r2(cpu / wall),
        "load_generator_cpu_cores": r2(gen / wall), "machine_idle_cores": r2(idle / wall),
        "machine_steal_cores": r2(steal / wall),
        "server_written_kib_per_msg": r2(written_kib_per_msg),
    });
    match log {
        Some(Ok(a)) => {
            eprintln!(
                "    its log, mid-step: {} commits, {} messages and {} pages each; most pages: {}",
                a.commits,
                a.rows_per_commit.map_or("–".into(), |r| r.to_string()),
                a.pages_per_commit,
                a.by_tree
                    .iter()
                    .take(5)
                    .map(|(t, n)| format!("{t} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            json["log_mid_step"] = json!(a);
        }
        Some(Err(e)) => {
            eprintln!("    its log could not be read mid-step: {e:#}");
            json["log_mid_step"] = json!({ "error": format!("{e:#}") });
        }
        None => {}
    }
    Ok(Step {
        json,
        achieved,
        p99,
        sustained,
        errors,
        dup: sum(&r, "dup"),
        gap: sum(&r, "gap"),
        // Loss only counts once everything was acknowledged within the drain.
        lost: if unacked <= 0.0 { step_lost } else { 0.0 },
        first_error: first_error(&r),
    })
}

// -------------------------------------------------------------------- reconnect storm

async fn reconnect(c: &Ctx, a: &StormArgs) -> anyhow::Result<Value> {
    let n = pick(a.n, 10_000, 100, c.smoke);
    let per_conv = pick(a.per_conv, 2, 2, c.smoke);
    let workers = pick(a.workers, 2, 2, c.smoke);
    let agents = 4.max(workers);
    eprintln!("reconnect: {n} visitors drop and resume, {per_conv} messages each while away");
    let (server, s, _dir) = fresh(c, agents).await?;
    let r = storm_run(&server, &s.site_key, false, &s.agents, n, workers, per_conv).await;
    server.stop().await;
    let mut out =
        json!({"params": {"n": n, "per_conv": per_conv, "workers": workers}, "confab": r?});
    if c.ceiling {
        let relay = Server::relay(None).await?;
        let fake = fake_agents(agents);
        let r = storm_run(&relay, "relay", true, &fake, n, workers, per_conv).await;
        relay.stop().await;
        out["ceiling"] = r?;
    }
    check(&out["confab"], &["errors", "dup", "gap", "lost", "behind"])?;
    Ok(out)
}

async fn storm_run(
    server: &Server,
    site_key: &str,
    relay: bool,
    agents: &[worker::AgentCred],
    n: usize,
    workers: usize,
    per_conv: usize,
) -> anyhow::Result<Value> {
    let mut pool = Pool::start(workers, 2, &server.base, site_key, relay, agents).await?;
    let per = n.div_ceil(workers);
    let t = Instant::now();
    pool.all(|_| Cmd::Visitors {
        n: per,
        conversations: true,
    })
    .await?;
    let setup_secs = t.elapsed().as_secs_f64();
    pool.all(|_| Cmd::Connect { concurrency: 256 }).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    pool.all(|_| Cmd::Drop).await?;
    let t = Instant::now();
    pool.all(|_| Cmd::Post { per_conv }).await?;
    let post_secs = t.elapsed().as_secs_f64();
    let cpu0 = util::cpu_secs(server.pid);
    let r = pool.all(|_| Cmd::Resume { timeout_secs: 60.0 }).await?;
    let cpu = util::cpu_secs(server.pid) - cpu0;
    let start = r
        .iter()
        .map(|x| x["start_ns"].as_f64().unwrap_or(0.0))
        .fold(f64::MAX, f64::min);
    let done = max(&r, "done_ns");
    let _ = pool.all(|_| Cmd::Close).await;
    pool.quit().await;
    Ok(json!({
        "clients": n, "setup_secs": r2(setup_secs), "post_secs": r2(post_secs),
        "catch_up_secs": r2((done - start) / 1e9),
        "delivered": sum(&r, "delivered"),
        "behind": sum(&r, "behind"), "lost": sum(&r, "lost"), "dup": sum(&r, "dup"), "gap": sum(&r, "gap"),
        "errors": sum(&r, "errors"), "first_error": first_error(&r),
        "server_cpu_secs": r2(cpu),
    }))
}

// -------------------------------------------------------------------- busy day

async fn busy_day(c: &Ctx, a: &DayArgs) -> anyhow::Result<Value> {
    let n = pick(a.conversations, 10_000, 40, c.smoke);
    let messages = pick(a.messages, 20, 20, c.smoke);
    let concurrency = pick(a.concurrency, 200, 10, c.smoke);
    let agents = pick(a.agents, 8, 2, c.smoke);
    let workers = pick(a.workers, 2, 2, c.smoke).min(agents);
    eprintln!("busy day: {n} conversations of {messages} messages, {concurrency} at once");
    let day = Day {
        conversations: n,
        messages,
        concurrency,
        workers,
    };
    let (server, s, dir) = fresh(c, agents).await?;
    // The day loads the widget's script, which the server embeds when it is built: a
    // binary built without the web UI would fail every conversation the same way.
    let widget = reqwest::Client::builder()
        .no_proxy()
        .build()?
        .get(format!("{}/widget.js", server.base))
        .send()
        .await?
        .status();
    if !widget.is_success() {
        server.stop().await;
        anyhow::bail!(
            "the server has no web UI (GET /widget.js: {widget}); build it first: \
             (cd web && npm ci && npm run build), then cargo build --release -p confab"
        );
    }
    let r = day_run(&server, &s.site_key, false, &s.agents, &day, dir.path()).await;
    server.stop().await;
    let mut out = json!({"params": {"conversations": n, "messages": messages, "concurrency": concurrency, "agents": agents, "workers": workers}, "confab": r?});
    check(&out["confab"], &["failed", "errors", "dup", "gap"])?;
    if c.ceiling {
        // The same day through the persisting relay: the same requests, sockets and
        // messages, each write one row through the group commit, with the work removed.
        let d = tempfile::tempdir()?;
        let relay = Server::relay(Some(d.path())).await?;
        let r = day_run(&relay, "relay", true, &fake_agents(agents), &day, d.path()).await;
        relay.stop().await;
        out["ceiling"]["relay"] = r?;
        check(
            &out["ceiling"]["relay"],
            &["failed", "errors", "dup", "gap"],
        )?;
        // What the storage alone allows for the same number of stored messages.
        let d = tempfile::tempdir()?;
        let sq = ceiling::sqlite(
            d.path(),
            concurrency.max(2) * 2,
            if c.smoke { 1.0 } else { 5.0 },
        )
        .await?;
        let rate = sq["inserts_per_s"].as_f64().unwrap_or(1.0).max(1.0);
        let msgs = out["confab"]["messages"].as_f64().unwrap_or(0.0);
        out["ceiling"]["sqlite"] = sq;
        out["ceiling"]["wall_secs_for_messages"] = json!(r2(msgs / rate));
    }
    Ok(out)
}

/// The size of a busy day.
struct Day {
    conversations: usize,
    messages: usize,
    concurrency: usize,
    workers: usize,
}

/// Replays `day` against `server` (Confab, or the relay with `relay`) and measures it;
/// `data` is the folder whose files are its database.
async fn day_run(
    server: &Server,
    site_key: &str,
    relay: bool,
    agents: &[worker::AgentCred],
    day: &Day,
    data: &std::path::Path,
) -> anyhow::Result<Value> {
    let workers = day.workers;
    let mut pool = Pool::start(workers, 2, &server.base, site_key, relay, agents).await?;
    let cpu0 = util::cpu_secs(server.pid);
    let t = Instant::now();
    let per = day.conversations.div_ceil(workers);
    let r = pool
        .all(|_| Cmd::BusyDay {
            conversations: per,
            messages: day.messages,
            concurrency: day.concurrency.div_ceil(workers),
        })
        .await?;
    let wall = t.elapsed().as_secs_f64();
    let cpu = util::cpu_secs(server.pid) - cpu0;
    let hwm = util::hwm_kib(server.pid);
    let rss = util::rss_kib(server.pid);
    let _ = pool.all(|_| Cmd::Close).await;
    pool.quit().await;
    let mut h = util::hist();
    for w in &r {
        h.add(util::hist_from_b64(w["ack"].as_str().unwrap_or(""))?)
            .ok();
    }
    let db_bytes: u64 = std::fs::read_dir(data)?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    let convs = per * workers;
    Ok(json!({
        "conversations": convs, "messages": sum(&r, "acked"),
        "http_requests": sum(&r, "http_requests"),
        "wall_secs": r2(wall), "server_cpu_secs": r2(cpu), "server_cpu_cores": r2(cpu / wall),
        "peak_rss_mib": r2(hwm as f64 / 1024.0), "end_rss_mib": r2(rss as f64 / 1024.0),
        "messages_per_s": (sum(&r, "acked") / wall).round(),
        "conversations_per_s": r2(convs as f64 / wall),
        "send_to_ack": util::lat(&h),
        "db_mib": r2(db_bytes as f64 / 1048576.0),
        "failed": sum(&r, "failed"), "errors": sum(&r, "errors"), "dup": sum(&r, "dup"), "gap": sum(&r, "gap"),
        "first_error": first_error(&r),
    }))
}

// -------------------------------------------------------------------- ceilings alone

async fn ceiling_only(c: &Ctx) -> anyhow::Result<Value> {
    let d = tempfile::tempdir()?;
    let secs = if c.smoke { 1.0 } else { 10.0 };
    let mut out = json!({});
    for p in [1usize, 64, 512, 2048] {
        eprintln!("ceiling: SQLite group commit, {p} producers");
        out[format!("sqlite_{p}")] =
            ceiling::sqlite(&d.path().join(p.to_string()).tap_mkdir()?, p, secs).await?;
    }
    eprintln!("ceiling: SQLite group commit, 5,000 inserts/s on a schedule");
    out["paced_5000"] =
        ceiling::sqlite_paced(&d.path().join("paced").tap_mkdir()?, 5000.0, secs).await?;
    eprintln!("ceiling: the disk's fdatasync");
    out["disk"] = ceiling::disk_sync(d.path(), if c.smoke { 50 } else { 3000 })?;
    if c.ceiling {
        // Standalone: the relay halves too, with the scenarios' default sizes.
        let relay = Server::relay(None).await?;
        let n = if c.smoke { 200 } else { 19_000 };
        out["relay_connections"] = idle_run(
            &relay,
            "relay",
            true,
            n,
            4,
            if c.smoke { 1.0 } else { 5.0 },
            &[],
        )
        .await?;
        relay.stop().await;
    }
    Ok(out)
}

trait TapMkdir {
    fn tap_mkdir(self) -> anyhow::Result<PathBuf>;
}
impl TapMkdir for PathBuf {
    fn tap_mkdir(self) -> anyhow::Result<PathBuf> {
        std::fs::create_dir_all(&self)?;
        Ok(self)
    }
}
