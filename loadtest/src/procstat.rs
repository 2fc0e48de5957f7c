//! CPU time and resident memory of a server process, from `/proc` (Linux).
//!
//! The run script starts the servers and hands their pids to the harnesses, which sample them at the
//! edges of each measured window: CPU seconds are `utime + stime` of every thread (`/proc/<pid>/stat`),
//! memory is `VmRSS` (`/proc/<pid>/status`).

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// Clock ticks per second of `/proc/<pid>/stat` (`USER_HZ`): 100 on every mainstream Linux ABI, and
/// reading `sysconf(_SC_CLK_TCK)` would need `unsafe`.
const TICKS_PER_SECOND: f64 = 100.0;

/// One reading of a process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcSample {
    /// User plus system CPU time so far, in seconds.
    pub cpu_seconds: f64,
    /// Resident set size, in bytes.
    pub rss_bytes: u64,
}

/// Reads process `pid`.
pub fn sample(pid: u32) -> anyhow::Result<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    Ok(ProcSample {
        cpu_seconds: cpu_seconds(&stat).context("parsing /proc/<pid>/stat")?,
        rss_bytes: rss_bytes(&status).context("parsing VmRSS")?,
    })
}

/// `sample` for an optional pid (a server this run did not start has none).
pub fn maybe_sample(pid: Option<u32>) -> Option<ProcSample> {
    pid.and_then(|pid| sample(pid).ok())
}

/// `utime + stime` in seconds. Fields are counted after the command name, which is in parentheses
/// and may itself hold spaces or parentheses, so the split is at the last `)`.
pub fn cpu_seconds(stat: &str) -> Option<f64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Field 3 (state) is fields[0]; utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_SECOND)
}

/// `VmRSS` in bytes.
pub fn rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_utime_plus_stime_even_with_spaces_in_the_name() {
        let stat = "4242 (publish server) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 50 0 0 20 0 \
                    9 0 123456 1000000 2000 18446744073709551615";
        assert_eq!(cpu_seconds(stat), Some(3.0));
        let odd = "7 (a) b (c)) R 1 7 7 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 1 1 1";
        assert_eq!(cpu_seconds(odd), Some(0.03));
        assert_eq!(cpu_seconds("garbage"), None);
    }

    #[test]
    fn rss_is_read_in_kibibytes_and_returned_in_bytes() {
        let status =
            "Name:\tpublish-server\nVmPeak:\t  99999 kB\nVmRSS:\t   20480 kB\nThreads:\t3\n";
        assert_eq!(rss_bytes(status), Some(20 * 1024 * 1024));
        assert_eq!(rss_bytes("Name: x\n"), None);
    }

    #[test]
    fn this_process_can_be_read() {
        let me = sample(std::process::id()).expect("own /proc entry");
        assert!(me.rss_bytes > 0);
    }
}
