//! Small shared pieces: clocks, the timestamp carried in message bodies, histograms and
//! what /proc says about a process.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;
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

pub fn body(scheduled_ns: u64, dir: char, tag: &str) -> String {
    format!("t={};{dir};{tag}", enc_t(scheduled_ns))
}

/// Latency histogram in microseconds, 1 µs to 10 min, 3 significant figures.
pub fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds")
}

pub fn record_since(h: &mut Histogram<u64>, scheduled_ns: u64) {
    let us = now_ns().saturating_sub(scheduled_ns) / 1000;
    h.saturating_record(us.max(1));
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
    fn timestamps_round_trip_and_carry_no_digits() {
        let t = 1_777_777_777_123_456_789u64;
        let b = body(t, 'v', "x");
        assert!(!b[..18].bytes().any(|c| c.is_ascii_digit()));
        assert_eq!(dec_t(&b), Some(t));
        assert_eq!(dir_of(&b), Some(b'v'));
        assert_eq!(dec_t("hello"), None);
    }
}
