//! Rate limit for denial records: a denied process that loops on `stat()`
//! must not fill the audit disk. The first denial of a process (pid plus
//! start time) at one kind of request for one reason is logged; the repeats within
//! [`WINDOW`] are only counted, and a `deny_summary` record with the count
//! follows when the window has passed or the log is closed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::procinfo::ProcessId;

/// How long repeated denials of one process are counted, not logged.
pub const WINDOW: Duration = Duration::from_secs(10);

/// Most processes tracked at once; past it every window is closed early.
const MAX_TRACKED: usize = 4096;

/// Denials that are coalesced: the same process, at the same kind of
/// request, for the same reason.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DenyKey {
    /// The denied process.
    pub process: ProcessId,
    /// The request: `lookup`, `open`, `opendir` or `access`.
    pub event: String,
    /// Why it was denied.
    pub reason: String,
}

/// The repeats of one key counted in a window, for its summary record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suppressed<T> {
    /// Whose denials these were.
    pub key: DenyKey,
    /// How many records were left out.
    pub count: u64,
    /// The last one left out (caller and path, for the summary).
    pub last: T,
}

struct Window<T> {
    opened: Instant,
    count: u64,
    last: Option<T>,
}

/// Tracks the open windows. `T` is what a summary needs of the last
/// record left out.
pub struct Coalescer<T> {
    windows: HashMap<DenyKey, Window<T>>,
    last_sweep: Instant,
}

/// What to do with one denial.
pub enum Verdict<T> {
    /// Log it (the first of its window); first log `summaries` of windows
    /// that have ended.
    Log(Vec<Suppressed<T>>),
    /// Only counted.
    Counted,
}

impl<T> Coalescer<T> {
    /// No windows open.
    pub fn new(now: Instant) -> Self {
        Coalescer {
            windows: HashMap::new(),
            last_sweep: now,
        }
    }

    /// Decides about one denial of `key` at `now`; `last` describes it in
    /// case it is only counted.
    pub fn deny(&mut self, key: DenyKey, last: T, now: Instant) -> Verdict<T> {
        let mut ended = self.sweep(now);
        if let Some(window) = self.windows.get_mut(&key) {
            window.count += 1;
            window.last = Some(last);
            return Verdict::Counted;
        }
        if self.windows.len() >= MAX_TRACKED {
            ended.extend(self.drain());
        }
        self.windows.insert(
            key,
            Window {
                opened: now,
                count: 0,
                last: None,
            },
        );
        Verdict::Log(ended)
    }

    /// Closes the windows older than [`WINDOW`] (checked at most once a
    /// second) and returns their summaries.
    pub fn sweep(&mut self, now: Instant) -> Vec<Suppressed<T>> {
        if now.duration_since(self.last_sweep) < Duration::from_secs(1) {
            return Vec::new();
        }
        self.last_sweep = now;
        let expired: Vec<DenyKey> = self
            .windows
            .iter()
            .filter(|(_, w)| now.duration_since(w.opened) >= WINDOW)
            .map(|(k, _)| k.clone())
            .collect();
        expired
            .into_iter()
            .filter_map(|key| {
                let window = self.windows.remove(&key)?;
                summary(key, window)
            })
            .collect()
    }

    /// Closes every window (at unmount) and returns their summaries.
    pub fn drain(&mut self) -> Vec<Suppressed<T>> {
        self.windows
            .drain()
            .filter_map(|(key, window)| summary(key, window))
            .collect()
    }
}

fn summary<T>(key: DenyKey, window: Window<T>) -> Option<Suppressed<T>> {
    Some(Suppressed {
        key,
        count: window.count,
        last: window.last?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(pid: i32, reason: &str) -> DenyKey {
        DenyKey {
            process: ProcessId { pid, start_time: 7 },
            event: "lookup".into(),
            reason: reason.into(),
        }
    }

    #[test]
    fn repeats_are_counted_and_summarized_after_the_window() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(t0);
        assert!(matches!(c.deny(key(1, "a"), "p0", t0), Verdict::Log(s) if s.is_empty()));
        for i in 0..9_999 {
            let t = t0 + Duration::from_millis(i / 2);
            assert!(matches!(c.deny(key(1, "a"), "p", t), Verdict::Counted));
        }
        // Another reason, request or process is logged at once.
        assert!(matches!(c.deny(key(1, "b"), "p", t0), Verdict::Log(_)));
        let mut opendir = key(1, "a");
        opendir.event = "opendir".into();
        assert!(matches!(c.deny(opendir, "p", t0), Verdict::Log(_)));
        assert!(matches!(c.deny(key(2, "a"), "p", t0), Verdict::Log(_)));
        let later = t0 + WINDOW + Duration::from_secs(1);
        let Verdict::Log(ended) = c.deny(key(1, "a"), "p1", later) else {
            panic!("a new window starts with a logged record");
        };
        assert_eq!(ended.len(), 1, "windows without repeats need no summary");
        assert_eq!(ended[0].count, 9_999);
        assert_eq!(ended[0].key, key(1, "a"));
        assert!(matches!(c.deny(key(1, "a"), "p2", later), Verdict::Counted));
        let drained = c.drain();
        assert_eq!(drained.len(), 1);
        assert_eq!((drained[0].count, drained[0].last), (1, "p2"));
    }

    #[test]
    fn a_reused_pid_is_another_process() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(t0);
        assert!(matches!(c.deny(key(1, "a"), (), t0), Verdict::Log(_)));
        let mut reused = key(1, "a");
        reused.process.start_time = 8;
        assert!(matches!(c.deny(reused, (), t0), Verdict::Log(_)));
    }
}
