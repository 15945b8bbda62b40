//! Facts about the process behind a FUSE request, read from `/proc`.
//!
//! FUSE reports the *thread* id of the caller. It is mapped to its thread
//! group (the process) through `/proc/<tid>/status`. The caller is blocked
//! in its system call while we answer, so the process we read is the one
//! that asked: if it was killed meanwhile and its id reused, our answer goes
//! to a request the kernel has already abandoned.

use std::path::PathBuf;

use procfs::process::Process;

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
    /// Command line, joined by spaces.
    pub cmdline: Option<String>,
    /// Ancestors from the process itself up to pid 1, each with start time.
    pub lineage: Vec<ProcessId>,
    /// cgroup v2 path (or v1 paths) of the process.
    pub cgroups: Vec<String>,
}

impl Caller {
    /// Gathers what /proc says about thread `tid`. Fields that cannot be
    /// read stay empty, and the policy treats them as not matching.
    pub fn inspect(tid: u32, uid: u32, gid: u32) -> Caller {
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
        let pid = status.tgid;
        let Ok(process) = Process::new(pid) else {
            return caller;
        };
        caller.pid = Some(pid);
        caller.groups = status.groups.clone();
        caller.exe = process.exe().ok();
        caller.cmdline = process.cmdline().ok().map(|args| args.join(" "));
        caller.cgroups = process
            .cgroups()
            .map(|groups| groups.into_iter().map(|g| g.pathname).collect())
            .unwrap_or_default();
        caller.lineage = lineage(pid);
        caller
    }
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
