//! Results: `latest.json` (merged with earlier runs of other scenarios) and `latest.md`.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{json, Value};

use crate::util::r2;

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_default();
    let mem_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0);
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    json!({"nproc": nproc, "mem_gib": r2(mem_kib as f64 / 1048576.0), "cpu": cpu,
           "nofile": rlimit::Resource::NOFILE.get().map(|l| l.0).unwrap_or(0)})
}

/// Writes the files; returns (passed, failed).
pub fn write(
    out: &Path,
    smoke: bool,
    bin: &Path,
    results: Vec<(&'static str, anyhow::Result<Value>)>,
) -> anyhow::Result<(usize, usize)> {
    std::fs::create_dir_all(out)?;
    let path = out.join("latest.json");
    let mut all: Value = std::fs::read_to_string(&path)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .filter(|v: &Value| v["smoke"] == json!(smoke))
        .unwrap_or_else(|| json!({"scenarios": {}}));
    all["smoke"] = json!(smoke);
    all["machine"] = machine();
    all["server_bin"] = json!(bin.display().to_string());
    let (mut passed, mut failed) = (0, 0);
    let when = chrono_like_now();
    for (name, r) in results {
        let entry = match r {
            Ok(mut v) => {
                passed += 1;
                v["ok"] = json!(true);
                v
            }
            Err(e) => {
                failed += 1;
                eprintln!("{name}: FAILED: {e:#}");
                json!({"ok": false, "error": format!("{e:#}")})
            }
        };
        let mut entry = entry;
        entry["run_at"] = json!(when);
        all["scenarios"][name] = entry;
    }
    std::fs::write(&path, serde_json::to_string_pretty(&all)? + "\n")?;
    let md = markdown(&all);
    std::fs::write(out.join("latest.md"), &md)?;
    eprintln!("{md}");
    eprintln!("results: {} and latest.md", path.display());
    Ok((passed, failed))
}

fn chrono_like_now() -> String {
    // Seconds since the epoch is enough to order runs; `date` renders it for people.
    let secs = crate::util::now_ns() / 1_000_000_000;
    std::process::Command::new("date")
        .args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| secs.to_string())
}

fn f(v: &Value) -> String {
    match v {
        Value::Null => "–".into(),
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            if x.fract() == 0.0 && x.abs() < 1e15 {
                format!("{}", x as i64)
            } else {
                format!("{x:.2}")
            }
        }
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn share(confab: &Value, ceiling: &Value, higher_is_better: bool) -> String {
    let (confab, ceiling) = (
        confab.as_f64().unwrap_or(0.0),
        ceiling.as_f64().unwrap_or(0.0),
    );
    if confab <= 0.0 || ceiling <= 0.0 {
        return "–".into();
    }
    let s = if higher_is_better {
        confab / ceiling
    } else {
        ceiling / confab
    };
    format!("{:.0} %", s * 100.0)
}

pub fn markdown(all: &Value) -> String {
    let mut m = String::new();
    let mc = &all["machine"];
    let _ = writeln!(
        m,
        "# Confab benchmark results{}\n\nMachine: {} cores ({}), {} GiB, open files {}. Server: `{}`.\n",
        if all["smoke"] == json!(true) { " (smoke run: tiny numbers, not a measurement)" } else { "" },
        f(&mc["nproc"]), f(&mc["cpu"]), f(&mc["mem_gib"]), f(&mc["nofile"]), f(&all["server_bin"])
    );
    let sc = &all["scenarios"];
    let bad = |name: &str, m: &mut String| {
        if sc[name]["ok"] == json!(false) {
            let _ = writeln!(m, "**FAILED:** {}\n", f(&sc[name]["error"]));
        }
    };
    if sc["connections"].is_object() {
        let s = &sc["connections"];
        let (c, k) = (&s["confab"], &s["ceiling"]);
        let _ = writeln!(
            m,
            "## Idle connections ({}) — run {}\n",
            f(&s["params"]["n"]),
            f(&s["run_at"])
        );
        bad("connections", &mut m);
        let _ = writeln!(m, "| measure | Confab | ceiling (bare relay) | share of ceiling | target |\n|---|---|---|---|---|");
        let _ = writeln!(
            m,
            "| connected | {} | {} | | 19,000 in one process |",
            f(&c["connected"]),
            f(&k["connected"])
        );
        let _ = writeln!(
            m,
            "| server memory per connection, bytes | {} | {} | {} | ≤ 16,384 |",
            f(&c["bytes_per_conn"]),
            f(&k["bytes_per_conn"]),
            share(&c["bytes_per_conn"], &k["bytes_per_conn"], false)
        );
        let _ = writeln!(
            m,
            "| … after holding {} s (heartbeats) | {} | {} | | |",
            f(&s["params"]["hold_secs"]),
            f(&c["bytes_per_conn_after_hold"]),
            f(&k["bytes_per_conn_after_hold"])
        );
        let _ = writeln!(
            m,
            "| time to connect all, s | {} | {} | {} | |",
            f(&c["connect_secs"]),
            f(&k["connect_secs"]),
            share(&c["connect_secs"], &k["connect_secs"], false)
        );
        let _ = writeln!(
            m,
            "| server RSS before → after, KiB | {} → {} | {} → {} | | |",
            f(&c["rss_before_kib"]),
            f(&c["rss_after_kib"]),
            f(&k["rss_before_kib"]),
            f(&k["rss_after_kib"])
        );
        let _ = writeln!(
            m,
            "| errors / closed by server | {} / {} | | | 0 |\n",
            f(&c["errors"]),
            f(&c["closed"])
        );
    }
    if sc["throughput"].is_object() {
        let s = &sc["throughput"];
        let p = &s["params"];
        let _ = writeln!(
            m,
            "## Throughput ({} visitors, {} agents, {} s steps) — run {}\n",
            f(&p["visitors"]),
            f(&p["agents"]),
            f(&p["step_secs"]),
            f(&s["run_at"])
        );
        bad("throughput", &mut m);
        let _ = writeln!(m, "Best sustained rate of persisted, acknowledged messages with p99 ≤ 50 ms: **{} msg/s**. Ceilings: the relay persisting every message before its ack (both halves, same durability) {} msg/s; the bare relay {} msg/s; Confab's own store driven in-process, without the server, {} posts/s; raw SQLite group commit in the ceiling table. Target ≥ 20,000.\n", f(&s["confab"]["best_sustained_per_s"]), f(&s["ceiling"]["durable"]["best_sustained_per_s"]), f(&s["ceiling"]["best_sustained_per_s"]), f(&s["ceiling"]["store"]["best_sustained_per_s"]));
        let _ = writeln!(m, "| offered msg/s | acked msg/s | v→a p50 / p99 / p99.9 ms | a→v p50 / p99 / p99.9 ms | send→ack p99 ms | server CPU cores | server writes, KiB per msg: Confab / relay + storage | relay + storage: acked/s, v→a p50 / p99, a→v p99 ms, cores | Confab's store alone: posts/s, p50 / p99 ms, cores, KiB per msg | raw SQLite commit at this rate: p50 / p99 / p99.9 ms, cores |\n|---|---|---|---|---|---|---|---|---|---|");
        let durable = steps(&s["ceiling"]["durable"]);
        let storage = array(&s["ceiling"]["storage"]);
        let alone = steps(&s["ceiling"]["store"]);
        let ksteps = steps(&s["ceiling"]);
        for st in steps(&s["confab"]) {
            let rate = st["offered_per_s"].as_f64().unwrap_or(0.0);
            let k = step_at(&durable, rate);
            let kc = k
                .map(|k| {
                    format!(
                        "{}{}, {} / {}, {}, {}",
                        f(&k["acked_per_s"]),
                        if k["first_try"].is_object() {
                            " (second try)"
                        } else {
                            ""
                        },
                        f(&k["visitor_to_agent"]["p50_ms"]),
                        f(&k["visitor_to_agent"]["p99_ms"]),
                        f(&k["agent_to_visitor"]["p99_ms"]),
                        f(&k["server_cpu_cores"])
                    )
                })
                .unwrap_or("–".into());
            let sc = step_at(&storage, rate)
                .map(|k| {
                    let l = &k["commit_latency"];
                    format!(
                        "{} / {} / {}, {}",
                        f(&l["p50_ms"]),
                        f(&l["p99_ms"]),
                        f(&l["p999_ms"]),
                        f(&k["cpu_cores"])
                    )
                })
                .unwrap_or("–".into());
            let al = step_at(&alone, rate)
                .map(|k| {
                    format!(
                        "{}{}, {} / {}, {}, {}",
                        f(&k["posted_per_s"]),
                        if k["sustained"] == json!(true) {
                            ""
                        } else {
                            " (not sustained)"
                        },
                        f(&k["post_latency"]["p50_ms"]),
                        f(&k["post_latency"]["p99_ms"]),
                        f(&k["cpu_cores"]),
                        f(&k["written_kib_per_msg"])
                    )
                })
                .unwrap_or("–".into());
            let (a, b) = (&st["visitor_to_agent"], &st["agent_to_visitor"]);
            let _ = writeln!(
                m,
                "| {} | {}{} | {} / {} / {} | {} / {} / {} | {} | {} | {} / {} | {} | {} | {} |",
                f(&st["offered_per_s"]),
                f(&st["acked_per_s"]),
                match (st["sustained"] == json!(true), st["first_try"].is_object()) {
                    (true, false) => "",
                    (true, true) => " (second try)",
                    (false, _) => " (not sustained)",
                },
                f(&a["p50_ms"]),
                f(&a["p99_ms"]),
                f(&a["p999_ms"]),
                f(&b["p50_ms"]),
                f(&b["p99_ms"]),
                f(&b["p999_ms"]),
                f(&st["send_to_ack"]["p99_ms"]),
                f(&st["server_cpu_cores"]),
                f(&st["server_written_kib_per_msg"]),
                k.map_or("–".into(), |k| f(&k["server_written_kib_per_msg"])),
                kc,
                al,
                sc
            );
        }
        if !ksteps.is_empty() || !durable.is_empty() || !storage.is_empty() {
            // The ceilings at every offered rate, also where Confab stopped: what the
            // machine gives each half of the work on its own.
            let _ = writeln!(m, "\nThe ceilings alone at every rate (each relay's process and the raw SQLite inserts each on the same 2 cores as their load generator):\n\n| offered msg/s | relay + storage: acked/s, v→a p99 ms, server cores | bare relay: acked/s, v→a p99 ms, server cores | raw SQLite: commit p99 ms, cores |\n|---|---|---|---|");
            for rate in rates_of(&[&ksteps, &durable, &storage]) {
                let relay = |v: &[Value]| {
                    step_at(v, rate)
                        .map(|k| {
                            format!(
                                "{}, {}, {}",
                                f(&k["acked_per_s"]),
                                f(&k["visitor_to_agent"]["p99_ms"]),
                                f(&k["server_cpu_cores"])
                            )
                        })
                        .unwrap_or("–".into())
                };
                let (d, r) = (relay(&durable), relay(&ksteps));
                let q = step_at(&storage, rate)
                    .map(|k| {
                        format!(
                            "{}, {}",
                            f(&k["commit_latency"]["p99_ms"]),
                            f(&k["cpu_cores"])
                        )
                    })
                    .unwrap_or("–".into());
                let _ = writeln!(m, "| {rate} | {d} | {r} | {q} |");
            }
        }
        cores_table(&mut m, s);
        writer_table(&mut m, s);
        log_pages_table(&mut m, s);
        let c = &s["confab"];
        let _ = writeln!(
            m,
            "\nLost {}, duplicated {}, gaps {}, errors {}.\n",
            f(&c["lost"]),
            f(&c["dup"]),
            f(&c["gap"]),
            f(&c["errors"])
        );
    }
    if sc["reconnect"].is_object() {
        let s = &sc["reconnect"];
        let (c, k) = (&s["confab"], &s["ceiling"]);
        let _ = writeln!(
            m,
            "## Reconnect storm ({} clients, {} messages each while away) — run {}\n",
            f(&s["params"]["n"]),
            f(&s["params"]["per_conv"]),
            f(&s["run_at"])
        );
        bad("reconnect", &mut m);
        let _ = writeln!(m, "| measure | Confab | ceiling (bare relay) | share of ceiling | target |\n|---|---|---|---|---|");
        let _ = writeln!(
            m,
            "| all caught up, s | {} | {} | {} | < 5 |",
            f(&c["catch_up_secs"]),
            f(&k["catch_up_secs"]),
            share(&c["catch_up_secs"], &k["catch_up_secs"], false)
        );
        let _ = writeln!(
            m,
            "| messages delivered on resume | {} | {} | | |",
            f(&c["delivered"]),
            f(&k["delivered"])
        );
        let _ = writeln!(
            m,
            "| not caught up / lost / duplicated / gaps | {} / {} / {} / {} | | | 0 |",
            f(&c["behind"]),
            f(&c["lost"]),
            f(&c["dup"]),
            f(&c["gap"])
        );
        let _ = writeln!(
            m,
            "| server CPU during the storm, s | {} | | | |\n",
            f(&c["server_cpu_secs"])
        );
    }
    if sc["busy_day"].is_object() {
        let s = &sc["busy_day"];
        let (c, k) = (&s["confab"], &s["ceiling"]);
        let _ = writeln!(
            m,
            "## Busy day ({} conversations × {} messages, {} in flight) — run {}\n",
            f(&s["params"]["conversations"]),
            f(&s["params"]["messages"]),
            f(&s["params"]["concurrency"]),
            f(&s["run_at"])
        );
        bad("busy_day", &mut m);
        let _ = writeln!(
            m,
            "| measure | Confab | ceiling | share of ceiling | target |\n|---|---|---|---|---|"
        );
        let r = &k["relay"];
        let _ = writeln!(
            m,
            "| wall time, s | {} | {} (the persisting relay, the same day) | {} | < 60 |",
            f(&c["wall_secs"]),
            f(&r["wall_secs"]),
            share(&c["wall_secs"], &r["wall_secs"], false)
        );
        let _ = writeln!(
            m,
            "| wall time for its messages alone, s | | {} (raw SQLite inserts) | {} | |",
            f(&k["wall_secs_for_messages"]),
            share(&c["wall_secs"], &k["wall_secs_for_messages"], false)
        );
        let _ = writeln!(
            m,
            "| server CPU, s (cores busy) | {} ({}) | {} ({}) | | |",
            f(&c["server_cpu_secs"]),
            f(&c["server_cpu_cores"]),
            f(&r["server_cpu_secs"]),
            f(&r["server_cpu_cores"])
        );
        let _ = writeln!(
            m,
            "| server peak memory (VmHWM), MiB | {} | {} | | < 200 |",
            f(&c["peak_rss_mib"]),
            f(&r["peak_rss_mib"])
        );
        let _ = writeln!(
            m,
            "| messages acked / per s | {} / {} | {} / {} | | |",
            f(&c["messages"]),
            f(&c["messages_per_s"]),
            f(&r["messages"]),
            f(&r["messages_per_s"])
        );
        let _ = writeln!(
            m,
            "| HTTP requests | {} | {} | | |",
            f(&c["http_requests"]),
            f(&r["http_requests"])
        );
        let _ = writeln!(
            m,
            "| send→ack p50 / p99 ms | {} / {} | {} / {} | | |",
            f(&c["send_to_ack"]["p50_ms"]),
            f(&c["send_to_ack"]["p99_ms"]),
            f(&r["send_to_ack"]["p50_ms"]),
            f(&r["send_to_ack"]["p99_ms"])
        );
        let _ = writeln!(
            m,
            "| database size, MiB | {} | {} | | |",
            f(&c["db_mib"]),
            f(&r["db_mib"])
        );
        let _ = writeln!(
            m,
            "| failed conversations / errors / dup / gaps | {} / {} / {} / {} | | | 0 |\n",
            f(&c["failed"]),
            f(&c["errors"]),
            f(&c["dup"]),
            f(&c["gap"])
        );
    }
    if sc["ceiling"].is_object() {
        let s = &sc["ceiling"];
        let _ = writeln!(
            m,
            "## Ceiling: raw SQLite inserts, WAL, group commit, log synced before the answer — run {}\n",
            f(&s["run_at"])
        );
        bad("ceiling", &mut m);
        let _ = writeln!(m, "| producers waiting on their commit | inserts/s | mean batch | commit p50 / p99 ms |\n|---|---|---|---|");
        if let Some(o) = s.as_object() {
            for (k, v) in o.iter().filter(|(k, _)| k.starts_with("sqlite_")) {
                let _ = writeln!(
                    m,
                    "| {} | {} | {} | {} / {} |",
                    k.trim_start_matches("sqlite_"),
                    f(&v["inserts_per_s"]),
                    f(&v["mean_batch"]),
                    f(&v["commit_latency"]["p50_ms"]),
                    f(&v["commit_latency"]["p99_ms"])
                );
            }
        }
        let p = &s["paced_5000"];
        if p.is_object() {
            let l = &p["commit_latency"];
            let _ = writeln!(
                m,
                "\nOn a schedule, 5,000 inserts/s (open loop, timed from when each was due): mean batch {}, commit p50 {} / p99 {} / p99.9 {} / max {} ms.",
                f(&p["mean_batch"]),
                f(&l["p50_ms"]),
                f(&l["p99_ms"]),
                f(&l["p999_ms"]),
                f(&l["max_ms"])
            );
        }
        let d = &s["disk"]["fdatasync"];
        if d.is_object() {
            let _ = writeln!(
                m,
                "\nThe disk alone, {} appends of 32 KiB each followed by `fdatasync`: p50 {} / p99 {} / p99.9 {} / max {} ms.",
                f(&s["disk"]["syncs"]),
                f(&d["p50_ms"]),
                f(&d["p99_ms"]),
                f(&d["p999_ms"]),
                f(&d["max_ms"])
            );
        }
        let _ = writeln!(m);
    }
    m
}

/// Where each step's database log pages went (`log_mid_step`, from `wal`): Confab's and
/// the persisting relay's.
/// The elements of a JSON array (none when `v` is not one, as for a run that did not
/// take place).
fn array(v: &Value) -> Vec<Value> {
    v.as_array().cloned().unwrap_or_default()
}

/// A run's steps.
fn steps(run: &Value) -> Vec<Value> {
    array(&run["steps"])
}

/// The step of `run` at the offered `rate`.
fn step_at(run: &[Value], rate: f64) -> Option<&Value> {
    run.iter()
        .find(|st| st["offered_per_s"].as_f64() == Some(rate))
}

/// Every rate offered in any of `runs`, each once, lowest first.
fn rates_of(runs: &[&[Value]]) -> Vec<f64> {
    let mut rates: Vec<f64> = runs
        .iter()
        .copied()
        .flatten()
        .filter_map(|st| st["offered_per_s"].as_f64())
        .collect();
    rates.sort_by(|a, b| a.total_cmp(b));
    rates.dedup();
    rates
}

/// Where the machine's cores went in each step: the server's process, the load generator
/// (its workers and the bench's own process) and what nobody used, for Confab and each
/// relay. A step whose cores are all taken cannot go faster on this machine without
/// cheaper work on one side or the other.
/// Where the writer of Confab's store alone spent each step (`store_alone::writer_json`).
fn writer_table(m: &mut String, s: &Value) {
    let alone = steps(&s["ceiling"]["store"]);
    if !alone.iter().any(|st| st["writer"].is_object()) {
        return;
    }
    let _ = writeln!(m, "\nWhere the writer of Confab's store alone spent each step, per batch in µs (p50 / p99 / max): how long its transaction waited (for posts, or for the batch before it to be synced), its statements, its commit (which runs a checkpoint when one falls due), and each sync of the log; busy is the share of the step it spent in statements and commits:\n\n| offered posts/s | batches/s, posts per batch | wait | statements | commit | sync (syncs/s) | busy |\n|---|---|---|---|---|---|---|");
    for st in &alone {
        let w = &st["writer"];
        if !w.is_object() {
            continue;
        }
        let part = |k: &str| {
            format!(
                "{} / {} / {}",
                f(&w[k]["p50_us"]),
                f(&w[k]["p99_us"]),
                f(&w[k]["max_us"])
            )
        };
        let _ = writeln!(
            m,
            "| {} | {}, {} | {} | {} | {} | {} ({}) | {} |",
            f(&st["offered_per_s"]),
            f(&w["batches_per_s"]),
            f(&w["ops_per_batch"]),
            part("wait_us"),
            part("apply_us"),
            part("commit_us"),
            part("sync_us"),
            f(&w["syncs_per_s"]),
            f(&w["busy"])
        );
    }
}

fn cores_table(m: &mut String, s: &Value) {
    let runs = [
        steps(&s["confab"]),
        steps(&s["ceiling"]["durable"]),
        steps(&s["ceiling"]),
    ];
    if !runs[0]
        .iter()
        .any(|st| st["load_generator_cpu_cores"].is_number())
    {
        return;
    }
    let _ = writeln!(m, "\nWhere the machine's cores went in each step: the server's process / the load generator (its workers and the bench) / idle, in cores (stolen by the hypervisor, when any, in brackets):\n\n| offered msg/s | Confab | relay + storage | bare relay |\n|---|---|---|---|");
    for rate in rates_of(&[&runs[0], &runs[1], &runs[2]]) {
        let cell = |run: &[Value]| {
            step_at(run, rate)
                .map(|st| {
                    let steal = st["machine_steal_cores"].as_f64().unwrap_or(0.0);
                    format!(
                        "{} / {} / {}{}",
                        f(&st["server_cpu_cores"]),
                        f(&st["load_generator_cpu_cores"]),
                        f(&st["machine_idle_cores"]),
                        if steal >= 0.01 {
                            format!(" ({steal:.2})")
                        } else {
                            String::new()
                        }
                    )
                })
                .unwrap_or("–".into())
        };
        let _ = writeln!(
            m,
            "| {rate} | {} | {} | {} |",
            cell(&runs[0]),
            cell(&runs[1]),
            cell(&runs[2])
        );
    }
}

fn log_pages_table(m: &mut String, s: &Value) {
    let (confab, relay) = (steps(&s["confab"]), steps(&s["ceiling"]["durable"]));
    if !confab.iter().any(|st| st["log_mid_step"].is_object()) {
        return;
    }
    let _ = writeln!(m, "\nThe database log's commits, from copies taken through the middle half of each step: messages and pages per commit, and the pages per commit of the B-trees that took most (their owners read after the step):\n\n| offered msg/s | Confab: commits seen, msgs / commit, pages / commit | Confab: pages per commit by B-tree | relay + storage: msgs / commit, pages / commit |\n|---|---|---|---|");
    let sum = |l: &Value| {
        if l["error"].is_string() {
            return format!("not read: {}", l["error"].as_str().unwrap_or(""));
        }
        format!(
            "{}, {}, {}",
            f(&l["commits"]),
            f(&l["rows_per_commit"]),
            f(&l["pages_per_commit"])
        )
    };
    for st in &confab {
        let l = &st["log_mid_step"];
        let trees = l["by_tree"]
            .as_array()
            .map(|t| {
                t.iter()
                    .take(6)
                    .map(|e| format!("{} {}", e[0].as_str().unwrap_or("?"), f(&e[1])))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or("–".into());
        let r = step_at(&relay, st["offered_per_s"].as_f64().unwrap_or(0.0))
            .map(|k| &k["log_mid_step"])
            .filter(|k| k.is_object())
            .map(|k| {
                format!(
                    "{}, {}",
                    f(&k["rows_per_commit"]),
                    f(&k["pages_per_commit"])
                )
            })
            .unwrap_or("–".into());
        let _ = writeln!(
            m,
            "| {} | {} | {trees} | {r} |",
            f(&st["offered_per_s"]),
            sum(l)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cores_table_sets_each_run_beside_the_others_by_rate() {
        let step = |rate: f64, server: f64, gen: f64, idle: f64, steal: f64| {
            json!({"offered_per_s": rate, "server_cpu_cores": server,
                "load_generator_cpu_cores": gen, "machine_idle_cores": idle,
                "machine_steal_cores": steal})
        };
        let all = json!({"scenarios": {"throughput": {
            "params": {"visitors": 10, "agents": 2, "step_secs": 1},
            "confab": {"steps": [step(5000.0, 0.83, 0.31, 0.8, 0.0), step(10000.0, 1.3, 0.55, 0.1, 0.0)]},
            "ceiling": {
                "steps": [step(5000.0, 0.25, 0.3, 1.4, 0.0), step(30000.0, 0.75, 1.05, 0.1, 0.0)],
                "durable": {"steps": [step(5000.0, 0.5, 0.3, 1.2, 0.04)]},
            },
        }}});
        let m = markdown(&all);
        assert!(
            m.contains(
                "| 5000 | 0.83 / 0.31 / 0.80 | 0.50 / 0.30 / 1.20 (0.04) | 0.25 / 0.30 / 1.40 |"
            ),
            "{m}"
        );
        assert!(m.contains("| 10000 | 1.30 / 0.55 / 0.10 | – | – |"), "{m}");
        assert!(m.contains("| 30000 | – | – | 0.75 / 1.05 / 0.10 |"), "{m}");
        // Results of earlier runs, without these figures, get no such table.
        let mut old = all.clone();
        for st in old["scenarios"]["throughput"]["confab"]["steps"]
            .as_array_mut()
            .unwrap()
        {
            st.as_object_mut()
                .unwrap()
                .remove("load_generator_cpu_cores");
        }
        assert!(!markdown(&old).contains("Where the machine's cores went"));
    }
}
