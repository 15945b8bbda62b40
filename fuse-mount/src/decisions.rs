//! Remembered allow decisions, so that a permitted job's every `lookup`,
//! `getattr` and `open` does not read its whole ancestry from `/proc`
//! again (issue 16: that was ~90% of the cost of a warm `stat`).
//!
//! **Key.** A [`ThreadKey`]: the thread id FUSE reports, that thread's
//! start time (`/proc/<tid>/stat` field 22, one small read per request),
//! and the uid and gid of the request. A thread id that the kernel hands
//! to a new thread or process has another start time, so a recycled id
//! never finds the decision of the thread that held it before. A thread
//! keeps its thread group for life (a thread that calls `exec` takes the
//! group leader's id and start time, whose decision it then shares: `exec`
//! keeps the ancestry, which is all a cached decision rests on).
//!
//! **What is cached.** Only allows, and only under a policy whose decision
//! for a given thread, uid and gid cannot change while the thread lives
//! ([`Policy::decisions_are_stable`]): the mounting-user default, `--allow-uid`
//! and the `mvault run` job rule. Executable, group, process-tree and
//! cgroup rules look at facts a process can change without a new start
//! time (`exec`, `setgroups`, re-parenting when an ancestor exits, moving
//! to another cgroup), so under them every request is decided afresh, as
//! before. Refusals are never cached: every denial is decided, audited and
//! worded exactly as without the cache.
//!
//! **The job rule.** A member of a running job stays a member while the job
//! runs (orphans are re-parented to `mvault run`, a subreaper, and admitted
//! as adopted; see [`crate::job`]). A decision is remembered only if the
//! command was already recorded when the ancestry was read, and used only
//! while the command runs ([`Policy::job_settled`]): once it exits, every
//! request is decided afresh, and refused.
//!
//! **Bound.** At most [`CAPACITY`] entries; when full the map is emptied
//! (entries of exited threads are never looked up again, and a live
//! thread's next request simply decides afresh).

use std::collections::HashMap;
use std::io::Read;
use std::sync::RwLock;

use crate::policy::Policy;

/// Most remembered threads per mount.
pub(crate) const CAPACITY: usize = 4096;

/// One requesting thread, as it is now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ThreadKey {
    /// Thread id as FUSE reports it.
    pub tid: u32,
    /// The thread's start time in clock ticks since boot.
    pub start_time: u64,
    /// uid of the request.
    pub uid: u32,
    /// gid of the request.
    pub gid: u32,
}

impl ThreadKey {
    /// The key of a request by thread `tid` as `uid`/`gid`, or `None` when
    /// there is no thread (tid 0) or its `/proc` entry cannot be read.
    pub fn read(tid: u32, uid: u32, gid: u32) -> Option<ThreadKey> {
        if tid == 0 {
            return None;
        }
        // `take` keeps `read_to_end` from asking the size first (procfs
        // files report 0): one open, one or two reads, one close.
        let file = std::fs::File::open(format!("/proc/{tid}/stat")).ok()?;
        let mut stat = Vec::with_capacity(512);
        file.take(4096).read_to_end(&mut stat).ok()?;
        Some(ThreadKey {
            tid,
            start_time: start_time_of(&stat)?,
            uid,
            gid,
        })
    }
}

/// Field 22 (start time) of the text of `/proc/<id>/stat`. The command
/// name (field 2) may hold spaces and parentheses, so fields are counted
/// from its closing parenthesis, the last one in the line.
fn start_time_of(stat: &[u8]) -> Option<u64> {
    let close = stat.iter().rposition(|b| *b == b')')?;
    let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
    // After the name: field 3 (state) is the first, so field 22 the 20th.
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

/// Allow decisions of one mount, by thread.
#[derive(Debug, Default)]
pub(crate) struct Decisions {
    /// Thread -> its process (thread group) id.
    allowed: RwLock<HashMap<ThreadKey, i32>>,
}

impl Decisions {
    /// The process of `key` if `policy` allowed it before and that still
    /// holds (see the module doc).
    pub fn allowed(&self, policy: &Policy, key: &ThreadKey) -> Option<i32> {
        if !policy.decisions_are_stable() || !policy.job_settled() {
            return None;
        }
        let allowed = self.allowed.read().unwrap_or_else(|e| e.into_inner());
        allowed.get(key).copied()
    }

    /// Remembers that `policy` allowed thread `key` of process `pid`;
    /// `settled` is [`Policy::job_settled`] as it was *before* the decision
    /// was made.
    pub fn remember(&self, policy: &Policy, settled: bool, key: ThreadKey, pid: i32) {
        if !policy.decisions_are_stable() || !settled {
            return;
        }
        let mut allowed = self.allowed.write().unwrap_or_else(|e| e.into_inner());
        if allowed.len() >= CAPACITY && !allowed.contains_key(&key) {
            allowed.clear();
        }
        allowed.insert(key, pid);
    }

    /// Remembered threads.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.allowed.read().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Arc;

    use super::*;
    use crate::job::JobTree;
    use crate::procinfo::ProcessId;

    fn key(tid: u32, start_time: u64) -> ThreadKey {
        ThreadKey {
            tid,
            start_time,
            uid: 1000,
            gid: 1000,
        }
    }

    fn owner_policy() -> Policy {
        Policy {
            owner_uid: 1000,
            ..Policy::default()
        }
    }

    #[test]
    fn start_time_is_field_22_whatever_the_command_name() {
        let tail = "S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 4242 99 100";
        assert_eq!(
            start_time_of(format!("7 (sh) {tail}").as_bytes()),
            Some(4242)
        );
        assert_eq!(
            start_time_of(format!("7 (a) b (c)) {tail}").as_bytes()),
            Some(4242),
            "a name with spaces and parentheses"
        );
        assert_eq!(start_time_of(b"7 (sh) S 1 2"), None, "cut short");
        assert_eq!(start_time_of(b"garbage"), None);
    }

    #[test]
    fn the_key_of_this_thread_carries_the_process_start_time() {
        let me = std::process::id();
        let key = ThreadKey::read(me, 1, 2).expect("own /proc entry");
        let process = ProcessId::of(me as i32).expect("own /proc entry");
        assert_eq!(key.start_time, process.start_time);
        assert_eq!((key.tid, key.uid, key.gid), (me, 1, 2));
        assert_eq!(ThreadKey::read(0, 1, 2), None, "no thread, no key");
    }

    #[test]
    fn a_recycled_thread_id_or_another_uid_does_not_find_the_allow() {
        let (policy, decisions) = (owner_policy(), Decisions::default());
        decisions.remember(&policy, true, key(10, 5), 10);
        assert_eq!(decisions.allowed(&policy, &key(10, 5)), Some(10));
        assert_eq!(
            decisions.allowed(&policy, &key(10, 6)),
            None,
            "same id, started later: another thread"
        );
        let other_uid = ThreadKey {
            uid: 0,
            ..key(10, 5)
        };
        assert_eq!(decisions.allowed(&policy, &other_uid), None);
        let other_gid = ThreadKey {
            gid: 0,
            ..key(10, 5)
        };
        assert_eq!(decisions.allowed(&policy, &other_gid), None);
    }

    #[test]
    fn rules_on_changeable_facts_are_never_cached() {
        let decisions = Decisions::default();
        let policies = [
            Policy {
                exes: vec![PathBuf::from("/usr/bin/python3")],
                ..owner_policy()
            },
            Policy {
                gids: vec![5],
                ..owner_policy()
            },
            Policy {
                pid_trees: vec![ProcessId {
                    pid: 1,
                    start_time: 1,
                }],
                ..owner_policy()
            },
            Policy {
                cgroups: vec!["/a".into()],
                ..owner_policy()
            },
        ];
        for policy in &policies {
            decisions.remember(policy, true, key(10, 5), 10);
            assert_eq!(decisions.allowed(policy, &key(10, 5)), None, "{policy:?}");
        }
        assert_eq!(decisions.len(), 0);
    }

    #[test]
    fn a_job_allow_counts_only_from_the_command_start_to_its_exit() {
        let job = Arc::new(JobTree::new(ProcessId {
            pid: 1,
            start_time: 1,
        }));
        let policy = Policy {
            job: Some(Arc::clone(&job)),
            ..owner_policy()
        };
        let decisions = Decisions::default();
        job.set_helpers(Vec::new());
        assert!(!policy.job_settled(), "command not yet recorded");
        decisions.remember(&policy, policy.job_settled(), key(10, 5), 10);
        assert_eq!(decisions.len(), 0, "decided before the command was known");
        job.set_command(ProcessId {
            pid: 10,
            start_time: 5,
        });
        decisions.remember(&policy, policy.job_settled(), key(10, 5), 10);
        assert_eq!(decisions.allowed(&policy, &key(10, 5)), Some(10));
        job.end();
        assert_eq!(
            decisions.allowed(&policy, &key(10, 5)),
            None,
            "nothing after the command exits"
        );
    }

    #[test]
    fn the_map_stays_bounded() {
        let (policy, decisions) = (owner_policy(), Decisions::default());
        for tid in 0..(CAPACITY as u32 + 10) {
            decisions.remember(&policy, true, key(tid + 1, 1), 1);
        }
        assert!(decisions.len() <= CAPACITY);
        assert_eq!(
            decisions.allowed(&policy, &key(CAPACITY as u32 + 10, 1)),
            Some(1)
        );
    }
}
