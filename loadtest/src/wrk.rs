//! The second, independent load generator of `loadtest bench`: `wrk` (Debian's package),
//! a C client on epoll with LuaJIT scripts. The bench runs it against the same endpoints as
//! its own client, in the same run, so every ratio is printed twice: when the two disagree,
//! the difference is what our own client costs on a machine whose two cores it shares with
//! the server (see the README's Performance section for which one a goal is judged by).
//!
//! CPU per request of each generator is read from `/proc/self/stat`: our client's as this
//! process's user + system time over the step, wrk's as the time of waited-for children
//! (`cutime + cstime`, which grows when wrk is reaped), both in clock ticks of 10 ms
//! (`getconf CLK_TCK` is 100 on Linux), so a step of a few seconds measures them to a few
//! percent.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;

/// What one wrk run measured.
#[derive(Debug, Clone, Serialize)]
pub struct WrkResult {
    pub what: String,
    pub throughput_per_s: f64,
    pub requests: u64,
    /// Answers outside 2xx/3xx plus socket errors (connect, read, write, timeout).
    pub failed: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    /// wrk's own CPU time (user + system) per request, in microseconds.
    pub generator_cpu_us_per_request: f64,
}

/// Whether `wrk` is on the PATH.
pub fn available() -> bool {
    Command::new("wrk")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// What one request of a run looks like.
pub enum Requests<'a> {
    /// `GET {path_prefix}{id}` over `ids` in turn, with a bearer key.
    Get {
        path_prefix: &'a str,
        ids: &'a [String],
        key: &'a str,
    },
    /// `POST {path}` of `body` with a bearer key and an idempotency key of its own per
    /// request (`wrk-<run>-<n>`; `run` keeps runs against the same server apart).
    Post {
        path: &'a str,
        body: &'a str,
        key: &'a str,
    },
}

/// A Lua string literal (long brackets cannot hold every text; escapes can).
fn lua_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for byte in text.bytes() {
        match byte {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b' '..=b'~' => out.push(byte as char),
            other => out.push_str(&format!("\\{other:03}")),
        }
    }
    out.push('"');
    out
}

/// The wrk script of `requests`; its `done` prints one line the bench parses.
fn script(requests: &Requests<'_>, run: &str) -> String {
    let mut lua = format!("run = {}\n", lua_string(run));
    match requests {
        Requests::Get {
            path_prefix,
            ids,
            key,
        } => {
            lua.push_str("local ids = {");
            for id in *ids {
                lua.push_str(&lua_string(id));
                lua.push(',');
            }
            lua.push_str("}\n");
            lua.push_str(&format!(
                "local prefix = {}\nlocal headers = {{[\"Authorization\"] = {}}}\n",
                lua_string(path_prefix),
                lua_string(&format!("Bearer {key}"))
            ));
            lua.push_str(
                "local i = 0\nrequest = function()\n  i = i + 1\n  return wrk.format(\"GET\", prefix .. ids[(i % #ids) + 1], headers)\nend\n",
            );
        }
        Requests::Post { path, body, key } => {
            lua.push_str(&format!(
                "local path = {}\nlocal body = {}\nlocal auth = {}\n",
                lua_string(path),
                lua_string(body),
                lua_string(&format!("Bearer {key}"))
            ));
            // an idempotency key per request, as our own client sends: threads count apart
            lua.push_str(
                "local n = 0\nthreads = 0\nsetup = function(thread) threads = threads + 1; thread:set(\"offset\", threads * 1000000000) end\n\
                 request = function()\n  n = n + 1\n  local headers = {[\"Authorization\"] = auth, [\"Content-Type\"] = \"application/json\", [\"Idempotency-Key\"] = \"wrk-\" .. run .. \"-\" .. ((offset or 0) + n)}\n  return wrk.format(\"POST\", path, headers, body)\nend\n",
            );
        }
    }
    lua.push_str(
        "done = function(summary, latency, requests)\n  local e = summary.errors\n  io.write(string.format(\"OC_WRK %d %d %d %d %.1f %.1f %.1f\\n\", summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))\nend\n",
    );
    lua
}

/// CPU time in clock ticks from `/proc/self/stat`: (this process, its reaped children).
pub fn cpu_ticks() -> (u64, u64) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return (0, 0);
    };
    // fields after the command name, which is in parentheses and may hold spaces
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return (0, 0);
    };
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(1)
        .map(|field| field.parse().unwrap_or(0))
        .collect();
    // utime, stime, cutime, cstime are fields 14–17 of the line (`man 5 proc`); `fields`
    // starts at field 4 (ppid), so they are 10–13 here
    let at = |index: usize| fields.get(index).copied().unwrap_or(0);
    (at(10) + at(11), at(12) + at(13))
}

/// One clock tick in microseconds (`CLK_TCK` = 100 on Linux).
pub const TICK_US: f64 = 10_000.0;

/// Runs wrk against `base_url` for `duration` with `connections` open connections on one
/// thread (the server gets the other core), after a warm-up of `warmup`.
pub fn run(
    what: &str,
    base_url: &str,
    requests: &Requests<'_>,
    connections: u32,
    duration: Duration,
    warmup: Duration,
    dir: &Path,
) -> anyhow::Result<WrkResult> {
    let stem = format!(
        "wrk-{}",
        what.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    );
    // one script per run: its name is in the idempotency keys, so the measured run never
    // replays the warm-up's creates
    let write = |run: &str| -> anyhow::Result<std::path::PathBuf> {
        let path = dir.join(format!("{run}.lua"));
        std::fs::write(&path, script(requests, run))
            .with_context(|| format!("writing {path:?}"))?;
        Ok(path)
    };
    let seconds = |d: Duration| format!("{}s", d.as_secs().max(1));
    if !warmup.is_zero() {
        wrk(
            base_url,
            &write(&format!("{stem}-warmup"))?,
            connections,
            &seconds(warmup),
        )?;
    }
    let path = write(&stem)?;
    let (_, children_before) = cpu_ticks();
    let output = wrk(base_url, &path, connections, &seconds(duration))?;
    let (_, children_after) = cpu_ticks();
    let line = output
        .lines()
        .find_map(|line| line.strip_prefix("OC_WRK "))
        .with_context(|| format!("wrk printed no summary: {output}"))?;
    let numbers: Vec<f64> = line
        .split_whitespace()
        .map(|n| n.parse().unwrap_or(0.0))
        .collect();
    let [
        requests,
        duration_us,
        status_errors,
        socket_errors,
        p50,
        p99,
        p999,
    ] = numbers[..]
    else {
        bail!("wrk summary not understood: {line}");
    };
    let cpu_us = (children_after.saturating_sub(children_before)) as f64 * TICK_US;
    Ok(WrkResult {
        what: what.to_owned(),
        throughput_per_s: requests / (duration_us / 1e6).max(1e-9),
        requests: requests as u64,
        failed: (status_errors + socket_errors) as u64,
        p50_ms: p50 / 1_000.0,
        p99_ms: p99 / 1_000.0,
        p999_ms: p999 / 1_000.0,
        generator_cpu_us_per_request: cpu_us / requests.max(1.0),
    })
}

fn wrk(base_url: &str, script: &Path, connections: u32, duration: &str) -> anyhow::Result<String> {
    let output = Command::new("wrk")
        .args(["-t", "1", "-c", &connections.to_string(), "-d", duration])
        .args(["--timeout", "10s", "-s"])
        .arg(script)
        .arg(base_url)
        .stdin(Stdio::null())
        .output()
        .context("running wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!(
            "wrk failed: {text} {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lua_strings_escape_quotes_backslashes_and_non_ascii() {
        assert_eq!(lua_string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(lua_string("上"), "\"\\228\\184\\138\"");
        assert_eq!(lua_string("x\ny"), "\"x\\010y\"");
    }

    #[test]
    fn own_cpu_ticks_grow_with_work() {
        let (before, _) = cpu_ticks();
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while started.elapsed() < Duration::from_millis(100) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let (after, _) = cpu_ticks();
        assert!(after > before, "{before} -> {after}");
    }
}
