//! Who may read through the mount.
//!
//! Rules of different kinds combine with AND, rules of the same kind with
//! OR: `--allow-uid 1000 --allow-uid 1001 --allow-exe /usr/bin/python3`
//! admits python run by uid 1000 or 1001. With no rule at all, only the
//! mounting user is admitted (FUSE's own default), and `--allow-exe` alone
//! admits only the mounting user's runs of those programs. A caller whose `/proc`
//! entry cannot be read, or pid 0, is always denied.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::job::JobTree;
use crate::procinfo::{Caller, Facts, Integrity, ProcessId};

/// The access policy of one mount.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// Admitted user ids.
    pub uids: Vec<u32>,
    /// Admitted group ids (primary or supplementary).
    pub gids: Vec<u32>,
    /// Admitted executables (compared after resolving symlinks).
    pub exes: Vec<PathBuf>,
    /// Admitted process trees: the process and all its descendants.
    pub pid_trees: Vec<ProcessId>,
    /// Admitted cgroups: the cgroup and everything below it.
    pub cgroups: Vec<String>,
    /// The process tree of an `mvault run` job, known only after mounting
    /// (see [`JobTree`]): only it is admitted, and only while it runs.
    pub job: Option<Arc<JobTree>>,
    /// The mounting user, admitted when no rule is given.
    pub owner_uid: u32,
}

/// The outcome of a check, with the reason for the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Access granted.
    Allow,
    /// Access refused, and why.
    Deny(String),
}

impl Decision {
    /// Whether access was granted.
    pub fn allowed(&self) -> bool {
        matches!(self, Decision::Allow)
    }
}

impl Policy {
    /// Whether any explicit rule was given.
    pub fn has_rules(&self) -> bool {
        !(self.uids.is_empty()
            && self.gids.is_empty()
            && self.exes.is_empty()
            && self.pid_trees.is_empty()
            && self.cgroups.is_empty()
            && self.job.is_none())
    }

    /// Whether executables are the only rule (no user, group, process tree
    /// or cgroup rule says whose runs of them count).
    fn exe_is_the_only_rule(&self) -> bool {
        !self.exes.is_empty()
            && self.uids.is_empty()
            && self.gids.is_empty()
            && self.pid_trees.is_empty()
            && self.cgroups.is_empty()
            && self.job.is_none()
    }

    /// Whether the policy can admit users other than the mounting user, so
    /// the mount needs `allow_other`.
    pub fn admits_other_users(&self) -> bool {
        self.uids.iter().any(|u| *u != self.owner_uid) || !self.gids.is_empty()
    }

    /// Resolves executables so that symlinked paths compare equal to
    /// `/proc/<pid>/exe`.
    pub fn canonicalize(mut self) -> std::io::Result<Self> {
        self.exes = self
            .exes
            .iter()
            .map(std::fs::canonicalize)
            .collect::<std::io::Result<_>>()?;
        Ok(self)
    }

    /// Whether an allow stays right for as long as the requesting thread
    /// lives with the same uid and gid, so it may be remembered
    /// ([`crate::decisions`]): true for the mounting-user default,
    /// `--allow-uid` and the `mvault run` job rule. Executable, group,
    /// process-tree and cgroup rules look at what a process can change
    /// while it runs (`exec`, `setgroups`, re-parenting, cgroup moves).
    pub(crate) fn decisions_are_stable(&self) -> bool {
        self.gids.is_empty()
            && self.exes.is_empty()
            && self.pid_trees.is_empty()
            && self.cgroups.is_empty()
    }

    /// Whether the job (if any) is running with its command recorded: only
    /// then is an allow remembered, or a remembered one used.
    pub(crate) fn job_settled(&self) -> bool {
        self.job.as_ref().is_none_or(|job| job.settled())
    }

    /// The caller facts [`Policy::check`] looks at beyond uid and groups.
    pub fn facts_needed(&self) -> Facts {
        Facts {
            exe: !self.exes.is_empty(),
            cmdline: false,
            lineage: !self.pid_trees.is_empty() || self.job.is_some(),
            cgroups: !self.cgroups.is_empty(),
            integrity: !self.exes.is_empty(),
        }
    }

    /// Decides for one caller, inspected with at least
    /// [`Policy::facts_needed`].
    pub fn check(&self, caller: &Caller) -> Decision {
        if caller.pid.is_none() {
            return Decision::Deny(if caller.tid == 0 {
                "request without a process id".into()
            } else {
                "caller's /proc entry is unreadable".into()
            });
        }
        if !self.has_rules() {
            return if caller.uid == self.owner_uid {
                Decision::Allow
            } else {
                Decision::Deny(format!("uid {} is not the mounting user", caller.uid))
            };
        }
        if !self.uids.is_empty() && !self.uids.contains(&caller.uid) {
            return Decision::Deny(format!("uid {} not allowed", caller.uid));
        }
        // Any user can run an allowed program: alone, `--allow-exe` admits
        // the mounting user's runs of it (the other rules name who).
        if self.exe_is_the_only_rule() && caller.uid != self.owner_uid {
            return Decision::Deny(format!(
                "uid {} is not the mounting user (--allow-exe alone admits only that user)",
                caller.uid
            ));
        }
        if !self.gids.is_empty()
            && !self
                .gids
                .iter()
                .any(|g| *g == caller.gid || caller.groups.contains(g))
        {
            return Decision::Deny(format!("gid {} and its groups not allowed", caller.gid));
        }
        if !self.exes.is_empty()
            && !caller
                .exe
                .as_deref()
                .is_some_and(|exe| self.exes.iter().any(|e| e == exe))
        {
            return Decision::Deny(format!(
                "executable {} not allowed",
                caller.exe.as_deref().unwrap_or(Path::new("?")).display()
            ));
        }
        if !self.exes.is_empty()
            && let Some(why) = self.exe_integrity_refusal(caller)
        {
            return Decision::Deny(why);
        }
        if !self.pid_trees.is_empty() && !caller.lineage.iter().any(|p| self.pid_trees.contains(p))
        {
            return Decision::Deny("process is outside the allowed process tree".into());
        }
        if let Some(job) = &self.job
            && let Err(reason) = job.admits(caller)
        {
            return Decision::Deny(reason);
        }
        if !self.cgroups.is_empty()
            && !caller
                .cgroups
                .iter()
                .any(|have| self.cgroups.iter().any(|want| cgroup_within(have, want)))
        {
            return Decision::Deny("process is outside the allowed cgroups".into());
        }
        Decision::Allow
    }
}

impl Policy {
    /// Why a caller running an allowed executable is refused anyway: a
    /// loader variable or a foreign namespace (see [`crate::procinfo::integrity`]).
    /// A process that cannot be checked is refused if it runs as the
    /// mounting user; another user's (unreadable to a non-root daemon) is
    /// admitted by the uid, gid or cgroup rule that names it.
    fn exe_integrity_refusal(&self, caller: &Caller) -> Option<String> {
        let exe = caller.exe.as_deref().unwrap_or(Path::new("?")).display();
        match &caller.integrity {
            Some(Integrity::Clean) => None,
            Some(Integrity::Tainted(why)) => Some(format!("executable {exe} refused: {why}")),
            Some(Integrity::Unknown(why)) if caller.uid == self.owner_uid => {
                Some(format!("executable {exe} refused: {why}"))
            }
            Some(Integrity::Unknown(_)) => None,
            None => Some(format!("executable {exe} refused: not checked")),
        }
    }
}

/// Whether cgroup path `have` is `want` or below it.
fn cgroup_within(have: &str, want: &str) -> bool {
    let want = want.trim_end_matches('/');
    want.is_empty()
        || have == want
        || have
            .strip_prefix(want)
            .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(uid: u32) -> Caller {
        Caller {
            tid: 10,
            pid: Some(10),
            uid,
            gid: uid,
            exe: Some(PathBuf::from("/usr/bin/python3")),
            lineage: vec![
                ProcessId {
                    pid: 10,
                    start_time: 5,
                },
                ProcessId {
                    pid: 1,
                    start_time: 1,
                },
            ],
            cgroups: vec!["/system.slice/job-7.service".into()],
            integrity: Some(Integrity::Clean),
            ..Caller::default()
        }
    }

    #[test]
    fn facts_needed_follow_the_rules() {
        assert_eq!(Policy::default().facts_needed(), Facts::default());
        let p = Policy {
            exes: vec![PathBuf::from("/usr/bin/python3")],
            job: Some(Arc::new(JobTree::new(ProcessId {
                pid: 1,
                start_time: 1,
            }))),
            ..Policy::default()
        };
        let needed = p.facts_needed();
        assert!(needed.exe && needed.lineage && !needed.cgroups && !needed.cmdline);
        let p = Policy {
            cgroups: vec!["/a".into()],
            ..Policy::default()
        };
        assert!(p.facts_needed().cgroups);
    }

    #[test]
    fn default_admits_only_the_owner() {
        let p = Policy {
            owner_uid: 1000,
            ..Policy::default()
        };
        assert!(p.check(&caller(1000)).allowed());
        assert!(!p.check(&caller(1001)).allowed());
    }

    #[test]
    fn unreadable_or_pid_zero_is_denied() {
        let p = Policy::default();
        let mut c = caller(0);
        c.pid = None;
        assert!(!p.check(&c).allowed());
        c.tid = 0;
        assert!(!p.check(&c).allowed());
    }

    #[test]
    fn kinds_combine_with_and_values_with_or() {
        let p = Policy {
            uids: vec![1000, 1001],
            exes: vec![PathBuf::from("/usr/bin/python3")],
            ..Policy::default()
        };
        assert!(p.check(&caller(1001)).allowed());
        assert!(!p.check(&caller(1002)).allowed());
        let mut other_exe = caller(1000);
        other_exe.exe = Some(PathBuf::from("/usr/bin/cat"));
        assert!(!p.check(&other_exe).allowed());
    }

    #[test]
    fn allow_exe_alone_admits_only_the_mounting_user() {
        let mut p = Policy {
            exes: vec![PathBuf::from("/usr/bin/python3")],
            owner_uid: 1000,
            ..Policy::default()
        };
        assert!(p.check(&caller(1000)).allowed());
        assert!(!p.check(&caller(1001)).allowed());
        p.cgroups = vec!["/system.slice".into()];
        assert!(
            p.check(&caller(1001)).allowed(),
            "with a cgroup rule, the cgroup says whose"
        );
    }

    #[test]
    fn allow_exe_refuses_a_tainted_or_unchecked_process_of_the_mounting_user() {
        let p = Policy {
            exes: vec![PathBuf::from("/usr/bin/python3")],
            owner_uid: 1000,
            ..Policy::default()
        };
        let mut c = caller(1000);
        c.integrity = Some(Integrity::Tainted("LD_PRELOAD is set".into()));
        assert_eq!(
            p.check(&c),
            Decision::Deny("executable /usr/bin/python3 refused: LD_PRELOAD is set".into())
        );
        c.integrity = Some(Integrity::Unknown("environ unreadable".into()));
        assert!(!p.check(&c).allowed(), "unchecked: refused");
        c.integrity = None;
        assert!(!p.check(&c).allowed(), "not inspected: refused");
        // Another user, admitted by name, whose /proc a non-root daemon
        // cannot read: the uid rule is the boundary.
        let p = Policy {
            uids: vec![1001],
            ..p
        };
        let mut other = caller(1001);
        other.integrity = Some(Integrity::Unknown("environ unreadable".into()));
        assert!(p.check(&other).allowed());
        other.integrity = Some(Integrity::Tainted("LD_PRELOAD is set".into()));
        assert!(!p.check(&other).allowed(), "what can be read still counts");
    }

    #[test]
    fn pid_tree_checks_start_time() {
        let mut p = Policy {
            pid_trees: vec![ProcessId {
                pid: 10,
                start_time: 5,
            }],
            ..Policy::default()
        };
        assert!(p.check(&caller(0)).allowed());
        p.pid_trees = vec![ProcessId {
            pid: 10,
            start_time: 6,
        }];
        assert!(
            !p.check(&caller(0)).allowed(),
            "a reused pid must not match"
        );
    }

    #[test]
    fn job_tree_rule_applies() {
        let job = Arc::new(JobTree::new(ProcessId {
            pid: 50,
            start_time: 1,
        }));
        let p = Policy {
            job: Some(Arc::clone(&job)),
            ..Policy::default()
        };
        assert!(!p.check(&caller(0)).allowed(), "denied until started");
        job.set_helpers(Vec::new());
        job.set_command(ProcessId {
            pid: 10,
            start_time: 5,
        });
        assert!(p.check(&caller(0)).allowed());
        job.end();
        assert!(!p.check(&caller(0)).allowed(), "denied once ended");
    }

    #[test]
    fn cgroup_prefix_matches_whole_components() {
        assert!(cgroup_within(
            "/system.slice/job-7.service",
            "/system.slice"
        ));
        assert!(cgroup_within("/system.slice", "/system.slice/"));
        assert!(!cgroup_within("/system.slice-evil/x", "/system.slice"));
        let p = Policy {
            cgroups: vec!["/user.slice".into()],
            ..Policy::default()
        };
        assert!(!p.check(&caller(0)).allowed());
    }
}
