//! Facts about the process behind a FUSE request, read from `/proc`.
//!
//! FUSE reports the *thread* id of the caller. It is mapped to its thread
//! group (the process) through `/proc/<tid>/status`. The caller is blocked
//! in its system call while we answer, so the process we read is the one
//! that asked: if it was killed meanwhile and its id reused, our answer goes
//! to a request the kernel has already abandoned.

pub mod integrity;

use std::path::PathBuf;

use procfs::process::Process;

pub use integrity::Integrity;

/// A process identity that survives pid reuse: pid plus kernel start time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProcessId {
    /// Process (thread-group) id.
    pub pid: i32,
    /// Start time in clock ticks since boot (`/proc/<pid>/stat` field 22).
    pub start_time: u64,
}

impl ProcessId {
    /// Reads the identity of the live process `pid`.
    pub fn of(pid: i32) -> Option<ProcessId> {
        let stat = Process::new(pid).ok()?.stat().ok()?;
        Some(ProcessId {
            pid,
            start_time: stat.starttime,
        })
    }
}

/// What the access policy and the audit log need to know about a caller.
#[derive(Clone, Debug, Default)]
pub struct Caller {
    /// Thread id as reported by FUSE.
    pub tid: u32,
    /// Process id (thread group), if /proc could be read.
    pub pid: Option<i32>,
    /// Effective uid from the FUSE request.
    pub uid: u32,
    /// Effective gid from the FUSE request.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// Resolved executable.
    pub exe: Option<PathBuf>,
    /// Command line, joined by spaces; bytes that are not UTF-8 are
    /// written `\xNN` (and a backslash `\\`), so nothing is lost.
    pub cmdline: Option<String>,
    /// Ancestors from the process itself up to pid 1, each with start time.
    pub lineage: Vec<ProcessId>,
    /// The process's cgroup v2 (unified hierarchy) path; empty where
    /// there is none (cgroup v1 hierarchies are not looked at).
    pub cgroups: Vec<String>,
    /// The `--allow-exe` checks ([`integrity`]), if read.
    pub integrity: Option<Integrity>,
}

/// Which facts about a caller to read from `/proc`. The thread group and
/// groups are always read; the rest only when the policy or the audit log
/// needs them, since every fact costs a `/proc` read on each request (the
/// lineage one per ancestor).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// `/proc/<pid>/exe`.
    pub exe: bool,
    /// `/proc/<pid>/cmdline`.
    pub cmdline: bool,
    /// The ancestors up to pid 1.
    pub lineage: bool,
    /// `/proc/<pid>/cgroup`.
    pub cgroups: bool,
    /// `/proc/<pid>/environ` and `/proc/<pid>/ns` ([`integrity`]).
    pub integrity: bool,
}

impl Facts {
    /// Everything the audit log records.
    pub const AUDIT: Facts = Facts {
        exe: true,
        cmdline: true,
        lineage: false,
        cgroups: false,
        integrity: false,
    };

    /// The facts needed by either `self` or `other`.
    pub fn union(self, other: Facts) -> Facts {
        Facts {
            exe: self.exe || other.exe,
            cmdline: self.cmdline || other.cmdline,
            lineage: self.lineage || other.lineage,
            cgroups: self.cgroups || other.cgroups,
            integrity: self.integrity || other.integrity,
        }
    }
}

impl Caller {
    /// Gathers what /proc says about thread `tid`: its process and groups,
    /// plus the `facts` asked for. Fields that cannot be read stay empty,
    /// and the policy treats them as not matching.
    pub fn inspect(tid: u32, uid: u32, gid: u32, facts: Facts) -> Caller {
        let mut caller = Caller {
            tid,
            uid,
            gid,
            ..Caller::default()
        };
        if tid == 0 {
            return caller;
        }
        let Ok(thread) = Process::new(tid as i32) else {
            return caller;
        };
        let Ok(status) = thread.status() else {
            return caller;
        };
        caller.pid = Some(status.tgid);
        caller.groups = status.groups;
        caller.add(facts);
        caller
    }

    /// Reads the `facts` not yet read (e.g. the audit fields of a caller
    /// that turned out to be denied).
    pub fn add(&mut self, facts: Facts) {
        let Some(pid) = self.pid else {
            return;
        };
        let Ok(process) = Process::new(pid) else {
            return;
        };
        if facts.exe && self.exe.is_none() {
            self.exe = process.exe().ok();
        }
        if facts.cmdline && self.cmdline.is_none() {
            self.cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
                .ok()
                .map(|raw| truncate_cmdline(escape_cmdline(&raw)));
        }
        if facts.cgroups && self.cgroups.is_empty() {
            self.cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
                .ok()
                .and_then(|text| unified_cgroup(&text))
                .into_iter()
                .collect();
        }
        if facts.integrity && self.integrity.is_none() {
            self.integrity = Some(integrity::inspect(pid));
        }
        if facts.lineage && self.lineage.is_empty() {
            self.lineage = lineage(pid);
        }
    }
}

/// The NUL-separated arguments of `/proc/<pid>/cmdline` joined by
/// spaces. Valid UTF-8 is kept as is (a backslash doubled); other bytes
/// become `\xNN`, so the log shows exactly what the process ran.
fn escape_cmdline(raw: &[u8]) -> String {
    let raw = raw.strip_suffix(b"\0").unwrap_or(raw);
    let mut out = String::with_capacity(raw.len());
    for (i, arg) in raw.split(|b| *b == 0).enumerate() {
        if i > 0 {
            out.push(' ');
        }
        for chunk in arg.utf8_chunks() {
            out.push_str(&chunk.valid().replace('\\', "\\\\"));
            for byte in chunk.invalid() {
                out.push_str(&format!("\\x{byte:02x}"));
            }
        }
    }
    out
}

/// The path of the cgroup v2 unified hierarchy (the `0::PATH` line) in
/// the text of `/proc/<pid>/cgroup`. v1 lines (`N:controllers:PATH`) are
/// ignored: `--allow-cgroup` names a v2 cgroup.
fn unified_cgroup(text: &str) -> Option<String> {
    text.lines()
        .find_map(|line| line.strip_prefix("0::"))
        .map(str::to_owned)
}

/// Longest command line kept for the audit log: `cat *` over a dataset
/// folder would otherwise write megabytes per line.
const MAX_CMDLINE: usize = 1024;

/// Cuts `cmdline` to [`MAX_CMDLINE`] bytes (on a character boundary),
/// marking the cut with "…".
fn truncate_cmdline(mut cmdline: String) -> String {
    if cmdline.len() > MAX_CMDLINE {
        let mut end = MAX_CMDLINE;
        while !cmdline.is_char_boundary(end) {
            end -= 1;
        }
        cmdline.truncate(end);
        cmdline.push('…');
    }
    cmdline
}

/// The chain of (pid, start time) from `pid` up to the root of the pid
/// namespace. Stops early if an entry cannot be read.
fn lineage(pid: i32) -> Vec<ProcessId> {
    let mut chain = Vec::new();
    let mut current = pid;
    while current > 0 && chain.len() < 4096 {
        let Some(stat) = Process::new(current).ok().and_then(|p| p.stat().ok()) else {
            break;
        };
        chain.push(ProcessId {
            pid: current,
            start_time: stat.starttime,
        });
        if stat.ppid == current {
            break;
        }
        current = stat.ppid;
    }
    chain
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_command_lines_are_cut_on_a_character_boundary() {
        assert_eq!(truncate_cmdline("cat a".into()), "cat a");
        let long = "é".repeat(MAX_CMDLINE);
        let cut = truncate_cmdline(long);
        assert!(cut.len() <= MAX_CMDLINE + '…'.len_utf8());
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn command_lines_that_are_not_utf8_are_escaped_losslessly() {
        assert_eq!(escape_cmdline(b"cat\0a b\0"), "cat a b");
        assert_eq!(
            escape_cmdline(b"cat\0caf\xe9\xff.bin\0"),
            "cat caf\\xe9\\xff.bin"
        );
        assert_eq!(escape_cmdline(b"echo\0a\\xff\0"), "echo a\\\\xff");
        assert_eq!(escape_cmdline("é".as_bytes()), "é");
        assert_eq!(escape_cmdline(b""), "");
    }

    #[test]
    fn only_the_cgroup_v2_entry_counts() {
        let hybrid = "12:pids:/user.slice/x\n1:name=systemd:/system.slice/job.service\n0::/user.slice/user-0.slice\n";
        assert_eq!(
            unified_cgroup(hybrid).as_deref(),
            Some("/user.slice/user-0.slice")
        );
        assert_eq!(
            unified_cgroup("3:cpu,cpuacct:/system.slice/job.service\n"),
            None
        );
        assert_eq!(unified_cgroup("0::/\n").as_deref(), Some("/"));
    }

    #[test]
    fn inspect_reads_only_the_facts_asked_for() {
        let tid = std::process::id();
        let bare = Caller::inspect(tid, 0, 0, Facts::default());
        assert_eq!(bare.pid, Some(tid as i32));
        assert!(bare.exe.is_none() && bare.cmdline.is_none() && bare.lineage.is_empty());
        let mut full = Caller::inspect(tid, 0, 0, Facts::AUDIT);
        assert!(full.exe.is_some() && full.cmdline.is_some() && full.lineage.is_empty());
        full.add(Facts {
            lineage: true,
            ..Facts::default()
        });
        assert_eq!(full.lineage.first().map(|p| p.pid), Some(tid as i32));
    }
}
