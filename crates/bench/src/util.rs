//! Small shared pieces: clocks, the timestamp carried in message bodies, histograms and
//! what /proc says about a process.

use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Wall-clock nanoseconds since the Unix epoch; the same clock in every process here.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Encodes a time as 16 letters `a`..`p` (one per nibble). Not decimal digits on purpose:
/// a 19-digit number can pass the Luhn check, and the server masks those as card numbers
/// (S1), which would destroy the timestamp about one time in ten.
pub fn enc_t(ns: u64) -> String {
    (0..16)
        .rev()
        .map(|i| (b'a' + ((ns >> (i * 4)) & 0xf) as u8) as char)
        .collect()
}

/// The scheduled send time in a body `t=<16 letters>;<dir>;...`.
pub fn dec_t(body: &str) -> Option<u64> {
    let rest = body.strip_prefix("t=")?;
    let letters = rest.get(..16)?;
    let mut v: u64 = 0;
    for b in letters.bytes() {
        if !(b'a'..=b'p').contains(&b) {
            return None;
        }
        v = (v << 4) | u64::from(b - b'a');
    }
    Some(v)
}

/// The direction marker of a bench body: `v` (visitor wrote it) or `a` (agent).
pub fn dir_of(body: &str) -> Option<u8> {
    let b = body.as_bytes();
    if b.len() >= 20 && b[18] == b';' && b[20] == b';' {
        Some(b[19])
    } else {
        None
    }
}

/// A bench message: `t=<send time>;<dir>;<tag>;<words>`. The words make it as long as a
/// chat line and give the full-text index the mix of common and rare words it sees in
/// real conversations (see [`Talk`]).
pub fn body(scheduled_ns: u64, dir: char, tag: &str, words: &str) -> String {
    format!("t={};{dir};{tag};{words}", enc_t(scheduled_ns))
}

/// What the load generator says, drawn the way chat text is: a word's frequency falls
/// with its rank (Zipf's law, exponent 1), over the 202 words below, most of them the
/// most common in English and the rest a support desk's. A visitor's line has 3–18
/// words, an agent's 6–34: about 10 and 20 words on average (some 40 and 85 characters),
/// as customers' and agents' chat lines run.
/// Client ids are what the widget and the inbox send: a prefix, the time and random bits.
/// Seeded, so a worker says the same things in every run.
pub struct Talk {
    rng: StdRng,
}

/// Cumulative weights of [`WORDS`] by rank (Zipf), for sampling; the same for every
/// [`Talk`] (the busy day makes one per conversation).
static CUM: LazyLock<Vec<f64>> = LazyLock::new(|| {
    let mut total = 0.0;
    (1..=WORDS.len())
        .map(|rank| {
            total += 1.0 / rank as f64;
            total
        })
        .collect()
});

#[rustfmt::skip]
const WORDS: &[&str] = &[
    "the", "i", "you", "to", "a", "and", "is", "it", "my", "for", "of", "in", "can", "on",
    "this", "that", "we", "have", "be", "me", "your", "with", "not", "do", "are", "but",
    "hi", "thanks", "please", "order", "what", "how", "so", "just", "if", "will", "at",
    "there", "was", "no", "yes", "get", "help", "our", "they", "from", "all", "an", "or",
    "would", "about", "one", "when", "up", "out", "like", "here", "know", "account", "now",
    "need", "time", "could", "see", "let", "check", "still", "email", "sure", "hello",
    "today", "did", "been", "right", "thank", "want", "back", "send", "should", "ok", "any",
    "also", "good", "some", "work", "way", "new", "more", "then", "only", "why", "which",
    "sorry", "delivery", "payment", "price", "again", "looking", "problem", "issue",
    "working", "after", "before", "card", "refund", "shipping", "address", "number",
    "password", "login", "page", "website", "app", "plan", "team", "days", "week",
    "tomorrow", "minutes", "hour", "return", "product", "size", "color", "stock",
    "available", "cancel", "change", "update", "invoice", "subscription", "trial",
    "support", "question", "answer", "received", "package", "tracking", "link", "code",
    "discount", "coupon", "free", "cost", "month", "year", "store", "open", "closed",
    "phone", "call", "message", "chat", "someone", "agent", "wait", "moment", "great",
    "perfect", "understand", "exactly", "maybe", "already", "tried", "error", "screen",
    "button", "click", "download", "install", "settings", "profile", "name", "details",
    "confirm", "booking", "appointment", "reservation", "tonight", "weekend", "morning",
    "afternoon", "evening", "monday", "friday", "europe", "sweden", "norway", "hungary",
    "customer", "service", "manager", "colleague", "forward", "resolve", "ticket",
    "appreciate", "patience", "apologies", "inconvenience", "unfortunately", "possible",
];

impl Talk {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// A visitor's (`'v'`) or an agent's line of words.
    pub fn line(&mut self, dir: char) -> String {
        let n = if dir == 'v' {
            self.rng.gen_range(3..=18)
        } else {
            self.rng.gen_range(6..=34)
        };
        let cum = &*CUM;
        let total = *cum.last().expect("words");
        let mut out = String::with_capacity(n * 7);
        for i in 0..n {
            let x = self.rng.gen_range(0.0..total);
            let k = cum.partition_point(|&c| c <= x).min(WORDS.len() - 1);
            if i > 0 {
                out.push(' ');
            }
            out.push_str(WORDS[k]);
        }
        out
    }

    /// A client id as the widget (`w`) and the inbox (`a`) make them: `<prefix>-`, the
    /// milliseconds since 1970 in 11 hex digits, `-` and 64 random bits in 16.
    pub fn client_id(&mut self, prefix: &str) -> String {
        let r: u64 = self.rng.gen();
        format!("{prefix}-{:011x}-{r:016x}", now_ns() / 1_000_000)
    }

    /// `0..n` in an order of its own: the order visitors take turns in.
    pub fn shuffled(&mut self, n: usize) -> Vec<usize> {
        let mut v: Vec<usize> = (0..n).collect();
        v.shuffle(&mut self.rng);
        v
    }
}

/// Latency histogram in microseconds, 1 µs to 10 min, 3 significant figures.
pub fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds")
}

pub fn record_since(h: &mut Histogram<u64>, scheduled_ns: u64) {
    let us = now_ns().saturating_sub(scheduled_ns) / 1000;
    h.saturating_record(us.max(1));
}

/// What [`open_loop`] measured.
pub struct Paced {
    /// From when each job was due to when it succeeded.
    pub lat: Histogram<u64>,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Wall time from the first job's start to the last one's end.
    pub secs: f64,
}

/// How often an open-loop pacer lets out what has fallen due: 1 ms. At 5,000 msg/s that
/// is five messages a tick, which leave together.
pub const TICK_NS: u64 = 1_000_000;

/// The time message `i` of a schedule at `rate` per second from `start_ns` is due: the
/// first tick of the 1 ms grid from `start_ns` at or after `start_ns + i / rate`. The
/// pacers let a message out on that tick, and its latency counts from it, so the
/// load generator's own rounding to ticks is not counted as the server's time, while
/// every tick the pacer is late still is.
pub fn due_ns(start_ns: u64, i: u64, rate: f64) -> u64 {
    let at = (i as f64 * 1e9 / rate) as u64;
    start_ns + at.div_ceil(TICK_NS) * TICK_NS
}

/// The pacers' clock: a timer of the kernel's (`timerfd`, on the wall clock the stamps
/// use) that fires on each tick of a 1 ms grid from `start_ns`, watched by tokio's
/// reactor like a socket. Tokio's own timer counts whole milliseconds from the runtime's
/// start, so an `interval` wakes anywhere in the millisecond after a deadline; this one
/// wakes within tens of microseconds of it, and costs no thread of its own. Ticks that
/// pass while the pacer is busy come as one: [`Ticks::next`] gives the latest, the pacer
/// lets out what all of them were due, and the earlier ones' lateness counts.
pub struct Ticks {
    fd: tokio::io::unix::AsyncFd<Timer>,
    start_ns: u64,
    /// Ticks seen so far.
    seen: u64,
}

/// A `TimerFd` as tokio's reactor takes it.
struct Timer(nix::sys::timerfd::TimerFd);

impl std::os::fd::AsRawFd for Timer {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsFd;
        self.0.as_fd().as_raw_fd()
    }
}

impl Ticks {
    /// Starts the clock; must be called inside a tokio runtime.
    pub fn start(start_ns: u64) -> std::io::Result<Self> {
        use nix::sys::time::TimeSpec;
        use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
        let timer = TimerFd::new(
            ClockId::CLOCK_REALTIME,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        let ns = |n: u64| TimeSpec::new((n / 1_000_000_000) as _, (n % 1_000_000_000) as _);
        timer.set(
            Expiration::IntervalDelayed(ns(start_ns), ns(TICK_NS)),
            TimerSetTimeFlags::TFD_TIMER_ABSTIME,
        )?;
        // `AsyncFd::new` is deprecated because an `AsRawFd` may hand out a descriptor
        // that closes or changes while registered; `Timer` owns its descriptor, which
        // stays open and the same until the `AsyncFd` drops it. (`register`, the
        // replacement, is `unsafe`, which this workspace forbids.)
        #[allow(deprecated)]
        let fd = tokio::io::unix::AsyncFd::new(Timer(timer))?;
        Ok(Ticks {
            fd,
            start_ns,
            seen: 0,
        })
    }

    /// The time of the latest tick, once a tick has come since the last call.
    pub async fn next(&mut self) -> std::io::Result<u64> {
        loop {
            let mut ready = self.fd.readable().await?;
            let mut count = [0u8; 8];
            match nix::unistd::read(&ready.get_inner().0, &mut count) {
                Ok(8) => {
                    self.seen += u64::from_ne_bytes(count);
                    return Ok(self.start_ns + (self.seen - 1) * TICK_NS);
                }
                Ok(n) => return Err(std::io::Error::other(format!("timerfd read {n} bytes"))),
                Err(nix::errno::Errno::EAGAIN) => ready.clear_ready(),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// An open-loop schedule of `total` messages at `rate` per second from `start_ns`, let out
/// on the ticks of [`Ticks`]: [`Pacer::next`] gives each message's number and due time
/// ([`due_ns`]) once its tick has come, and `None` after the last, when the timer is
/// closed (a drain that follows gets no more wake-ups).
pub struct Pacer {
    ticks: Option<Ticks>,
    start_ns: u64,
    rate: f64,
    total: u64,
    next: u64,
    /// The latest tick seen.
    tick: u64,
}

impl Pacer {
    /// Starts the clock; must be called inside a tokio runtime.
    pub fn start(start_ns: u64, rate: f64, total: u64) -> std::io::Result<Self> {
        Ok(Pacer {
            ticks: Some(Ticks::start(start_ns)?),
            start_ns,
            rate,
            total,
            next: 0,
            tick: 0,
        })
    }

    /// The next message `(i, due_ns)`, waiting for its tick if it has not come yet.
    pub async fn next(&mut self) -> std::io::Result<Option<(u64, u64)>> {
        let Some(ticks) = &mut self.ticks else {
            return Ok(None);
        };
        if self.next == self.total {
            self.ticks = None;
            return Ok(None);
        }
        let due = due_ns(self.start_ns, self.next, self.rate);
        while due > self.tick {
            self.tick = ticks.next().await?;
        }
        self.next += 1;
        Ok(Some((self.next - 1, due)))
    }
}

/// Runs `rate × secs` jobs open loop: job `i` starts on the tick it is due ([`due_ns`])
/// whatever the earlier ones are doing, so a slow system cannot slow the pacer down and
/// hide it, and its latency counts from that tick. `job(i, due_ns)` makes the job; the
/// pacer waits for all of them before it returns.
pub async fn open_loop<F, Fut>(rate: f64, secs: f64, mut job: F) -> Paced
where
    F: FnMut(u64, u64) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    let results = std::sync::Arc::new(std::sync::Mutex::new(Paced {
        lat: hist(),
        errors: 0,
        first_error: None,
        secs: 0.0,
    }));
    let start = std::time::Instant::now();
    let start_ns = now_ns();
    let mut pacer = Pacer::start(start_ns, rate, (rate * secs).round() as u64)
        .expect("the pacer's timer starts");
    let mut waits = tokio::task::JoinSet::new();
    while let Some((i, due)) = pacer.next().await.expect("the pacer's timer ticks") {
        let (done, results) = (job(i, due), results.clone());
        waits.spawn(async move {
            let r = done.await;
            let mut p = results.lock().unwrap();
            match r {
                Ok(()) => record_since(&mut p.lat, due),
                Err(e) => {
                    p.errors += 1;
                    p.first_error.get_or_insert(e);
                }
            }
        });
    }
    while waits.join_next().await.is_some() {}
    let secs = start.elapsed().as_secs_f64();
    let results = std::sync::Arc::try_unwrap(results).map_err(|_| "every job has ended");
    Paced {
        secs,
        ..results
            .expect("joined")
            .into_inner()
            .expect("no job panicked holding it")
    }
}

pub fn hist_to_b64(h: &Histogram<u64>) -> String {
    let mut buf = Vec::new();
    V2Serializer::new()
        .serialize(h, &mut buf)
        .expect("histogram serializes");
    base64::engine::general_purpose::STANDARD.encode(buf)
}

pub fn hist_from_b64(s: &str) -> anyhow::Result<Histogram<u64>> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(s)?;
    let h: Histogram<u64> = Deserializer::new()
        .deserialize(&mut std::io::Cursor::new(bytes))
        .map_err(|e| anyhow::anyhow!("histogram: {e:?}"))?;
    Ok(h)
}

/// Percentiles in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Lat {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

pub fn lat(h: &Histogram<u64>) -> Lat {
    if h.is_empty() {
        return Lat::default();
    }
    let ms = |v: u64| (v as f64 / 1000.0 * 1000.0).round() / 1000.0;
    Lat {
        count: h.len(),
        p50_ms: ms(h.value_at_quantile(0.50)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        p999_ms: ms(h.value_at_quantile(0.999)),
        max_ms: ms(h.max()),
    }
}

/// Raises the soft open-files limit to the hard one (children inherit it).
pub fn raise_nofile() -> u64 {
    match rlimit::Resource::NOFILE.get() {
        Ok((soft, hard)) => {
            if soft < hard && rlimit::Resource::NOFILE.set(hard, hard).is_ok() {
                hard
            } else {
                soft
            }
        }
        Err(_) => 0,
    }
}

/// The number after `key` in `/proc/PID/<file>` (files of `key:  value [unit]` lines), or 0.
fn proc_value(pid: u32, file: &str, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Resident memory now, KiB.
pub fn rss_kib(pid: u32) -> u64 {
    proc_value(pid, "status", "VmRSS:")
}

/// Peak resident memory, KiB.
pub fn hwm_kib(pid: u32) -> u64 {
    proc_value(pid, "status", "VmHWM:")
}

/// utime + stime of a process, in seconds (clock ticks of 1/100 s, as on Linux x86-64).
pub fn cpu_secs(pid: u32) -> f64 {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let Some(rest) = s.rfind(')').map(|i| &s[i + 2..]) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime 15.
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / clk_tck()
}

/// Bytes a process has passed to `write(2)` and `pwrite(2)` (`wchar` in `/proc/PID/io`).
/// For the servers that is their database's log and checkpoint writes: socket sends go
/// through `send(2)` and are not counted.
pub fn written_bytes(pid: u32) -> u64 {
    proc_value(pid, "io", "wchar:")
}

/// The whole machine's CPU time so far, from `/proc/stat`, in seconds: idle (waiting for
/// I/O included) and stolen by the hypervisor. Differences over a step say how much of the
/// machine nobody used, and how much the VM did not get.
pub fn machine_idle_steal() -> (f64, f64) {
    let Ok(s) = std::fs::read_to_string("/proc/stat") else {
        return (0.0, 0.0);
    };
    // cpu  user nice system idle iowait irq softirq steal …
    let f: Vec<f64> = s
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    let at = |i: usize| f.get(i).copied().unwrap_or(0.0);
    ((at(3) + at(4)) / clk_tck(), at(7) / clk_tck())
}

fn clk_tck() -> f64 {
    static TCK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// Rounds for reports.
pub fn r2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_figures_of_this_process() {
        let me = std::process::id();
        assert!(rss_kib(me) > 0 && hwm_kib(me) >= rss_kib(me));
        let before = written_bytes(me);
        let file = std::env::temp_dir().join(format!("confab-bench-written-{me}"));
        std::fs::write(&file, [7u8; 10_000]).unwrap();
        std::fs::remove_file(&file).unwrap();
        assert!(written_bytes(me) >= before + 10_000);
    }

    #[test]
    fn machine_counters_read_and_only_grow() {
        let (idle0, steal0) = machine_idle_steal();
        // Since boot some CPU was idle: a zero means /proc/stat was not read.
        assert!(idle0 > 0.0, "idle {idle0}");
        std::thread::sleep(std::time::Duration::from_millis(50));
        let (idle1, steal1) = machine_idle_steal();
        assert!(idle1 >= idle0 && steal1 >= steal0);
    }

    #[test]
    fn a_message_is_due_on_the_first_tick_at_or_after_its_time() {
        let start = 1_000_000_000_000;
        // 5,000 a second: five a tick, due on the tick that ends their millisecond.
        let dues: Vec<u64> = (0..12).map(|i| due_ns(start, i, 5000.0) - start).collect();
        let ms = TICK_NS;
        assert_eq!(
            dues,
            [
                0,
                ms,
                ms,
                ms,
                ms,
                ms,
                2 * ms,
                2 * ms,
                2 * ms,
                2 * ms,
                2 * ms,
                3 * ms
            ]
        );
        // Never before its time, never a tick after it, at any rate.
        for rate in [1.0, 333.0, 7_500.0, 20_000.0, 123_456.0] {
            for i in 0..2_000u64 {
                let exact = (i as f64 * 1e9 / rate) as u64;
                let due = due_ns(start, i, rate) - start;
                assert!(due >= exact && due - exact < TICK_NS, "{rate} {i}");
                assert!(due.is_multiple_of(TICK_NS));
            }
        }
    }

    #[tokio::test]
    async fn the_pacers_clock_ticks_on_its_grid_and_ticks_missed_come_as_one() {
        let start = now_ns() + 2 * TICK_NS;
        let mut ticks = Ticks::start(start).unwrap();
        let first = ticks.next().await.unwrap();
        assert_eq!(first, start);
        assert!(now_ns() >= start, "a tick comes once its time has come");
        let mut last = first;
        for _ in 0..5 {
            let t = ticks.next().await.unwrap();
            assert!(
                t > last && (t - start).is_multiple_of(TICK_NS),
                "{t} after {last}"
            );
            assert!(now_ns() >= t);
            last = t;
        }
        // A pacer busy for 20 ms gets the latest tick at once, not the 20 it missed one
        // by one: it lets out what they were all due in one go.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let t = ticks.next().await.unwrap();
        let now = now_ns();
        assert!(
            t >= last + 19 * TICK_NS && t <= now,
            "{t} after {last}, now {now}"
        );
        assert!((t - start).is_multiple_of(TICK_NS));
        assert!(
            now - t < 2 * TICK_NS,
            "the latest tick, {} µs ago",
            (now - t) / 1000
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn open_loop_runs_every_job_on_its_tick_and_times_it_from_there() {
        let started = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = started.clone();
        // 2,000 a second for 0.1 s: 200 jobs, two a tick; each takes 3 ms.
        let p = open_loop(2000.0, 0.1, move |i, due| {
            log.lock().unwrap().push((i, due, now_ns()));
            async move {
                tokio::time::sleep(std::time::Duration::from_millis(3)).await;
                if i == 7 {
                    Err("seven".to_string())
                } else {
                    Ok(())
                }
            }
        })
        .await;
        let started = started.lock().unwrap();
        assert_eq!(started.len(), 200);
        let start = started[0].1;
        for &(i, due, at) in started.iter() {
            assert_eq!(due, due_ns(start, i, 2000.0), "job {i}");
            assert!(at >= due, "job {i} started {} ns early", due - at);
        }
        // A slow job does not hold the next ones back (open loop): 199 ran, one failed.
        assert_eq!((p.lat.len(), p.errors), (199, 1));
        assert_eq!(p.first_error.as_deref(), Some("seven"));
        assert!(
            p.lat.min() >= 3_000,
            "timed from the tick: {} µs",
            p.lat.min()
        );
        assert!((0.1..1.0).contains(&p.secs), "{}", p.secs);
    }

    #[test]
    fn timestamps_round_trip_and_carry_no_digits() {
        let t = 1_777_777_777_123_456_789u64;
        let b = body(t, 'v', "x", &Talk::new(1).line('v'));
        assert!(!b[..18].bytes().any(|c| c.is_ascii_digit()));
        assert_eq!(dec_t(&b), Some(t));
        assert_eq!(dir_of(&b), Some(b'v'));
        assert_eq!(dec_t("hello"), None);
    }

    #[test]
    fn talk_is_chat_sized_zipfian_and_ids_are_the_widgets() {
        let mut talk = Talk::new(7);
        let (mut chars, mut counts) = ([0usize; 2], std::collections::HashMap::new());
        for i in 0..4000 {
            let dir = if i % 2 == 0 { 'v' } else { 'a' };
            let line = talk.line(dir);
            let n = line.split(' ').count();
            assert!(if dir == 'v' {
                (3..=18).contains(&n)
            } else {
                (6..=34).contains(&n)
            });
            chars[i % 2] += line.len();
            for w in line.split(' ') {
                *counts.entry(w.to_string()).or_insert(0usize) += 1;
            }
        }
        // Some 40 and 85 characters a line.
        let (v, a) = (chars[0] / 2000, chars[1] / 2000);
        assert!((35..=50).contains(&v) && (70..=100).contains(&a), "{v} {a}");
        // Rank 1 comes about twice as often as rank 2 and ten times as often as rank 10.
        let c = |w: &str| counts[w] as f64;
        assert!((1.6..2.5).contains(&(c("the") / c("i"))));
        assert!((7.0..14.0).contains(&(c("the") / c(WORDS[9]))));
        assert!(counts.len() > 150, "most of the words turn up");

        // `w-<ms, 11 hex>-<64 random bits, 16 hex>`, growing with time (web/src/shared/state.ts).
        let id = talk.client_id("w");
        let parts: Vec<&str> = id.split('-').collect();
        let lens: Vec<usize> = parts.iter().map(|p| p.len()).collect();
        assert_eq!(lens, [1, 11, 16], "{id}");
        assert!(
            id[2..].bytes().all(|b| b == b'-' || b.is_ascii_hexdigit()),
            "{id}"
        );
        let ms = u64::from_str_radix(parts[1], 16).unwrap();
        assert!(ms.abs_diff(now_ns() / 1_000_000) < 60_000, "{id}");
        std::thread::sleep(std::time::Duration::from_millis(2));
        let later = talk.client_id("w");
        assert!(later > id, "{later} after {id}");

        // The same seed says the same things; the turns are each visitor once.
        assert_eq!(Talk::new(3).line('a'), Talk::new(3).line('a'));
        let mut turns = talk.shuffled(1000);
        assert_ne!(turns[..10], (0..10).collect::<Vec<_>>()[..]);
        turns.sort_unstable();
        assert_eq!(turns, (0..1000).collect::<Vec<_>>());
    }
}
