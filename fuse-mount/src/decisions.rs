//! Remembered allow decisions, so that a permitted job's every `lookup`,
//! `getattr` and `open` does not read its whole ancestry from `/proc`
//! again (issue 16: that was ~90% of the cost of a warm `stat`).
//!
//! **Key.** A [`ThreadKey`]: the thread id FUSE reports and the uid and gid
//! of the request, each entry holding a [`Witness`] of *which* thread had
//! that id when the decision was made: a pidfd of the thread, opened
//! before the decision, or, where the kernel gives none, the thread's
//! start time. A remembered allow is used only while its witness holds
//! ([`Witness::holds`]: one `poll` of the pidfd with a zero timeout, or a
//! `/proc/<tid>/stat` read on the fallback), so an id that the kernel has
//! handed to a new thread or process (possible only once the old thread
//! has been reaped, which the pidfd reports) never finds the decision of
//! the thread that held it before; [`crate::witness`] has the reasoning.
//! A thread keeps its thread group for life (a thread that calls `exec`
//! takes the group leader's id, `struct pid` and start time, whose
//! decision it then shares: `exec` keeps the ancestry, which is all a
//! cached decision rests on).
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
//! **Bound.** At most [`CAPACITY`] entries, and no more than a quarter of
//! the process's soft limit on open files (each pidfd is a descriptor);
//! when full the map is emptied and its pidfds closed (entries of exited
//! threads are never used again, and a live thread's next request simply
//! decides afresh).

use std::collections::HashMap;
use std::sync::RwLock;

use rustix::process::{Resource, getrlimit};

use crate::policy::Policy;
use crate::witness::Witness;

/// Most remembered threads per mount.
pub(crate) const CAPACITY: usize = 4096;

/// Fewest remembered threads per mount, whatever the file limit.
const MIN_CAPACITY: usize = 16;

/// One requesting thread and its credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ThreadKey {
    /// Thread id as FUSE reports it.
    pub tid: u32,
    /// uid of the request.
    pub uid: u32,
    /// gid of the request.
    pub gid: u32,
}

impl ThreadKey {
    /// The key of a request by thread `tid` as `uid`/`gid`, or `None` when
    /// there is no thread (tid 0).
    pub fn new(tid: u32, uid: u32, gid: u32) -> Option<ThreadKey> {
        (tid != 0).then_some(ThreadKey { tid, uid, gid })
    }
}

/// A remembered allow.
#[derive(Debug)]
struct Allowed {
    /// Which thread held the id when it was allowed.
    witness: Witness,
    /// Its process (thread group) id.
    pid: i32,
}

/// Allow decisions of one mount, by thread.
#[derive(Debug)]
pub(crate) struct Decisions {
    allowed: RwLock<HashMap<ThreadKey, Allowed>>,
    /// Most entries (see the module doc).
    capacity: usize,
    /// Whether witnesses are pidfds where the kernel gives them (false:
    /// start times only, as on kernels without `PIDFD_THREAD`).
    pidfds: bool,
}

impl Default for Decisions {
    fn default() -> Decisions {
        let files = getrlimit(Resource::Nofile).current;
        let quarter = files.map_or(CAPACITY, |n| usize::try_from(n / 4).unwrap_or(CAPACITY));
        Decisions::new(quarter.clamp(MIN_CAPACITY, CAPACITY), true)
    }
}

impl Decisions {
    /// At most `capacity` remembered threads, witnessed by pidfds if
    /// `pidfds`.
    fn new(capacity: usize, pidfds: bool) -> Decisions {
        Decisions {
            allowed: RwLock::new(HashMap::new()),
            capacity,
            pidfds,
        }
    }

    /// The process of `key` if `policy` allowed it before and that still
    /// holds (see the module doc).
    pub fn allowed(&self, policy: &Policy, key: &ThreadKey) -> Option<i32> {
        if !policy.decisions_are_stable() || !policy.job_settled() {
            return None;
        }
        let allowed = self.allowed.read().unwrap_or_else(|e| e.into_inner());
        let entry = allowed.get(key)?;
        entry.witness.holds(key.tid).then_some(entry.pid)
    }

    /// Evidence of which thread has `key`'s id, to take *before* deciding
    /// a request that may be remembered; `None` when nothing will be (the
    /// policy does not let decisions be remembered, or the thread is gone).
    pub fn witness(&self, policy: &Policy, key: &ThreadKey) -> Option<Witness> {
        if !policy.decisions_are_stable() {
            return None;
        }
        Witness::take(key.tid, self.pidfds)
    }

    /// Remembers that `policy` allowed thread `key` of process `pid`;
    /// `witness` is what [`Decisions::witness`] gave before the decision,
    /// `settled` is [`Policy::job_settled`] as it was then. Nothing is
    /// remembered if the witnessed thread no longer has the id: the
    /// decision may have read about another one.
    pub fn remember(
        &self,
        policy: &Policy,
        settled: bool,
        (key, witness): (ThreadKey, Witness),
        pid: i32,
    ) {
        if !policy.decisions_are_stable() || !settled || !witness.holds(key.tid) {
            return;
        }
        let mut allowed = self.allowed.write().unwrap_or_else(|e| e.into_inner());
        let mut dropped = HashMap::new();
        if allowed.len() >= self.capacity && !allowed.contains_key(&key) {
            dropped = std::mem::take(&mut *allowed);
        }
        let replaced = allowed.insert(key, Allowed { witness, pid });
        drop(allowed);
        // The pidfds close here, outside the lock.
        drop((dropped, replaced));
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
    use std::process::{Child, Command};
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::job::JobTree;
    use crate::procinfo::ProcessId;

    fn key(tid: u32) -> ThreadKey {
        ThreadKey {
            tid,
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

    /// Remembers an allow of `key` as a request would: witness, decide,
    /// remember.
    fn allow(decisions: &Decisions, policy: &Policy, settled: bool, key: ThreadKey) {
        if let Some(witness) = decisions.witness(policy, &key) {
            decisions.remember(policy, settled, (key, witness), key.tid as i32);
        }
    }

    fn me() -> ThreadKey {
        key(std::process::id())
    }

    fn sleeper() -> Child {
        Command::new("sleep")
            .arg("60")
            .spawn()
            .expect("spawn sleep")
    }

    fn end(mut child: Child) {
        child.kill().ok();
        child.wait().expect("reap");
    }

    /// Makes the kernel hand out id `tid` next (the test runs as root) and
    /// returns a child holding it, or `None` if this cannot be done here.
    /// Another thread or process may take the id first: then that one
    /// holds it, which serves as well, and `held` tells so.
    fn reuse(tid: u32) -> Option<(Option<Child>, bool)> {
        for _ in 0..200 {
            if std::fs::write("/proc/sys/kernel/ns_last_pid", format!("{}", tid - 1)).is_err() {
                return None;
            }
            let child = sleeper();
            if child.id() == tid {
                return Some((Some(child), true));
            }
            end(child);
            if std::path::Path::new(&format!("/proc/{tid}")).exists() {
                return Some((None, true));
            }
        }
        Some((None, false))
    }

    /// A process that gets a remembered process's id once that one was
    /// reaped does not find its allow, with pidfds and with start times.
    fn a_new_holder_of_a_remembered_id_misses(pidfds: bool) {
        let (policy, decisions) = (owner_policy(), Decisions::new(64, pidfds));
        let old = sleeper();
        let tid = old.id();
        allow(&decisions, &policy, true, key(tid));
        assert_eq!(decisions.len(), 1);
        assert_eq!(decisions.allowed(&policy, &key(tid)), Some(tid as i32));
        end(old);
        assert_eq!(decisions.allowed(&policy, &key(tid)), None, "reaped");
        // Start times count clock ticks: let one pass, as it would
        // between two holders of one id in any real case.
        std::thread::sleep(Duration::from_millis(30));
        let Some((new, held)) = reuse(tid) else {
            eprintln!("skipped: cannot steer pid allocation (not root?)");
            return;
        };
        assert!(held, "could not get id {tid} reused");
        assert_eq!(
            decisions.allowed(&policy, &key(tid)),
            None,
            "the new holder of {tid} must be decided afresh"
        );
        if let Some(new) = new {
            end(new);
        }
    }

    #[test]
    fn a_new_process_with_a_remembered_id_is_decided_afresh() {
        a_new_holder_of_a_remembered_id_misses(true);
    }

    #[test]
    fn a_new_process_with_a_remembered_id_is_decided_afresh_by_start_time() {
        a_new_holder_of_a_remembered_id_misses(false);
    }

    #[test]
    fn another_uid_or_gid_does_not_find_the_allow() {
        let (policy, decisions) = (owner_policy(), Decisions::default());
        allow(&decisions, &policy, true, me());
        assert_eq!(decisions.allowed(&policy, &me()), Some(me().tid as i32));
        let other_uid = ThreadKey { uid: 0, ..me() };
        assert_eq!(decisions.allowed(&policy, &other_uid), None);
        let other_gid = ThreadKey { gid: 0, ..me() };
        assert_eq!(decisions.allowed(&policy, &other_gid), None);
        assert_eq!(ThreadKey::new(0, 1, 2), None, "no thread, no key");
    }

    #[test]
    fn an_allow_decided_after_its_thread_was_reaped_is_not_remembered() {
        for pidfds in [true, false] {
            let (policy, decisions) = (owner_policy(), Decisions::new(64, pidfds));
            let child = sleeper();
            let key = key(child.id());
            let witness = decisions.witness(&policy, &key).expect("a live child");
            end(child);
            decisions.remember(&policy, true, (key, witness), key.tid as i32);
            assert_eq!(decisions.len(), 0, "pidfds: {pidfds}");
        }
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
            assert!(decisions.witness(policy, &me()).is_none(), "{policy:?}");
            let witness = Witness::take(me().tid, true).expect("own thread");
            decisions.remember(policy, true, (me(), witness), 10);
            assert_eq!(decisions.allowed(policy, &me()), None, "{policy:?}");
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
        allow(&decisions, &policy, policy.job_settled(), me());
        assert_eq!(decisions.len(), 0, "decided before the command was known");
        job.set_command(ProcessId {
            pid: 10,
            start_time: 5,
        });
        allow(&decisions, &policy, policy.job_settled(), me());
        assert_eq!(decisions.allowed(&policy, &me()), Some(me().tid as i32));
        job.end();
        assert_eq!(
            decisions.allowed(&policy, &me()),
            None,
            "nothing after the command exits"
        );
    }

    #[test]
    fn the_map_stays_bounded() {
        let (policy, decisions) = (owner_policy(), Decisions::new(32, true));
        for uid in 0..42 {
            allow(&decisions, &policy, true, ThreadKey { uid, ..me() });
        }
        assert!(decisions.len() <= 32);
        let last = ThreadKey { uid: 41, ..me() };
        assert_eq!(decisions.allowed(&policy, &last), Some(me().tid as i32));
        let limit = Decisions::default().capacity;
        assert!((MIN_CAPACITY..=CAPACITY).contains(&limit), "{limit}");
    }
}
