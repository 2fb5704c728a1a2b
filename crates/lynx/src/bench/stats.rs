//! Statistics and memory readings of `lynx bench`: median/mean/min/max over timed iterations
//! (the same definitions as Python's `statistics`, so tools/bench_reference.py agrees) and the
//! process's peak resident set size from `/proc/self/status`.

use serde::{Deserialize, Serialize};

/// Median, mean, minimum and maximum of a set of samples (times in ms, or rates).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub median: f64,
    /// Reports written before the mean was added lack it (read back as 0).
    #[serde(default)]
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    /// Number of samples.
    pub n: usize,
}

impl Stats {
    /// `None` for an empty set or one holding a NaN. An even count takes the mean of the two
    /// middle samples.
    pub fn from_samples(samples: &[f64]) -> Option<Self> {
        if samples.is_empty() || samples.iter().any(|x| x.is_nan()) {
            return None;
        }
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        let median = if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2.0
        };
        Some(Self {
            median,
            mean: s.iter().sum::<f64>() / n as f64,
            min: s[0],
            max: s[n - 1],
            n,
        })
    }

    /// "median (min–max)" with `digits` decimals.
    pub fn display(&self, digits: usize) -> String {
        format!(
            "{:.d$} ({:.d$}–{:.d$})",
            self.median,
            self.min,
            self.max,
            d = digits
        )
    }
}

/// One `kB` field (e.g. `VmHWM`) of a `/proc/<pid>/status` text, in bytes.
pub fn status_field_bytes(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        let mut parts = rest.split_whitespace();
        let value: u64 = parts.next()?.parse().ok()?;
        match parts.next() {
            Some("kB") => Some(value * 1024),
            None => Some(value),
            Some(_) => None,
        }
    })
}

/// The peak resident set size of this process so far (`VmHWM`), where the OS reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status_field_bytes(&status, "VmHWM")
}

/// CPU time used by this process so far (all threads), where the OS reports it. Unlike wall
/// time it does not grow while other programs hold the cores, which matters on a shared machine.
pub fn process_cpu_time() -> Option<std::time::Duration> {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime only writes the timespec it is given.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
        (rc == 0).then(|| std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The current resident set size of this process (`VmRSS`), where the OS reports it.
pub fn current_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status_field_bytes(&status, "VmRSS")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        let s = Stats::from_samples(&[5.0, 1.0, 3.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (3.0, 1.0, 5.0, 3));
        let s = Stats::from_samples(&[4.0, 1.0, 3.0, 10.0]).unwrap();
        assert_eq!(
            (s.median, s.mean, s.min, s.max, s.n),
            (3.5, 4.5, 1.0, 10.0, 4)
        );
        let s = Stats::from_samples(&[2.5]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.5, 2.5, 2.5));
        assert!(Stats::from_samples(&[]).is_none());
        assert!(Stats::from_samples(&[1.0, f64::NAN]).is_none());
        assert_eq!(
            Stats::from_samples(&[1.0, 2.0, 4.0]).unwrap().display(1),
            "2.0 (1.0–4.0)"
        );
    }

    #[test]
    fn reads_kb_fields_of_proc_status() {
        let text =
            "Name:\tlynx\nVmPeak:\t  2000 kB\nVmHWM:\t   1234 kB\nVmRSS:\t  1000 kB\nThreads:\t3\n";
        assert_eq!(status_field_bytes(text, "VmHWM"), Some(1234 * 1024));
        assert_eq!(status_field_bytes(text, "VmRSS"), Some(1000 * 1024));
        assert_eq!(status_field_bytes(text, "Threads"), Some(3));
        assert_eq!(status_field_bytes(text, "VmSwap"), None);
        // A prefix of another field's name is not that field.
        assert_eq!(status_field_bytes(text, "Vm"), None);
    }

    #[cfg(unix)]
    #[test]
    fn cpu_time_advances_with_work() {
        let a = process_cpu_time().unwrap();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        assert!(process_cpu_time().unwrap() > a, "{x}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_process_memory() {
        // Other tests allocate concurrently, so only the presence of both readings is checked.
        assert!(peak_rss_bytes().unwrap() > 0);
        assert!(current_rss_bytes().unwrap() > 0);
    }
}
