//! The process tree of one `mvault run` job: who counts as "the command"
//! while it runs, and that nobody does once it has exited.
//!
//! `run` (the *starter*) mounts first and starts the command afterwards, so
//! the command's id is known only after mounting. The starter is a child
//! subreaper: a process of the command's tree whose parent exits is
//! re-parented to the starter rather than to init, so its ancestry no
//! longer passes through the command. Such *adopted* processes are still
//! admitted while the command runs. The starter's own helpers (fusermount3,
//! started before the command) never are, nor the starter itself, nor
//! anything at all once the command has exited.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::procinfo::{Caller, ProcessId};

/// The job's process tree, shared by the starter and the filesystem.
#[derive(Debug)]
pub struct JobTree {
    starter: ProcessId,
    /// The starter's children before the command started: its helpers.
    helpers: OnceLock<Vec<ProcessId>>,
    command: OnceLock<ProcessId>,
    ended: AtomicBool,
}

impl JobTree {
    /// A job started by process `starter` (normally `mvault run` itself).
    pub fn new(starter: ProcessId) -> JobTree {
        JobTree {
            starter,
            helpers: OnceLock::new(),
            command: OnceLock::new(),
            ended: AtomicBool::new(false),
        }
    }

    /// Records the starter's children just before it starts the command:
    /// they are helpers and are never admitted. Until this is called,
    /// everyone is denied.
    pub fn set_helpers(&self, helpers: Vec<ProcessId>) {
        let _ = self.helpers.set(helpers);
    }

    /// Records the command once started. Until then (after
    /// [`JobTree::set_helpers`]), any non-helper descendant of the starter
    /// is taken to be the command, which runs from its first instruction.
    pub fn set_command(&self, command: ProcessId) {
        let _ = self.command.set(command);
    }

    /// The command has exited: from now on nobody is admitted.
    pub fn end(&self) {
        self.ended.store(true, Ordering::SeqCst);
    }

    /// Whether the command is recorded and has not exited: from then on a
    /// member stays a member until [`JobTree::end`].
    pub fn settled(&self) -> bool {
        self.command.get().is_some() && !self.ended.load(Ordering::SeqCst)
    }

    /// Whether `caller` (inspected with its lineage) belongs to the job.
    pub fn admits(&self, caller: &Caller) -> Result<(), String> {
        if self.ended.load(Ordering::SeqCst) {
            return Err("the permitted command has exited".into());
        }
        let Some(helpers) = self.helpers.get() else {
            return Err("the permitted command has not started yet".into());
        };
        if let Some(command) = self.command.get()
            && caller.lineage.contains(command)
        {
            return Ok(());
        }
        // The ancestor just below the starter, if the starter is an ancestor
        // (and not the caller itself).
        let below_starter = caller
            .lineage
            .iter()
            .position(|p| *p == self.starter)
            .filter(|&at| at > 0)
            .map(|at| caller.lineage[at - 1]);
        let adopted = below_starter.is_some_and(|child| {
            !helpers.contains(&child)
                && self
                    .command
                    .get()
                    .is_none_or(|command| child.start_time >= command.start_time)
        });
        match (adopted, self.command.get()) {
            (true, _) => Ok(()),
            (false, None) => Err("the permitted command has not started yet".into()),
            (false, Some(_)) => {
                Err("process is outside the permitted command's process tree".into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(pid: i32, start_time: u64) -> ProcessId {
        ProcessId { pid, start_time }
    }

    /// A caller with ancestry `lineage` (itself first).
    fn caller(lineage: &[ProcessId]) -> Caller {
        Caller {
            tid: lineage[0].pid as u32,
            pid: Some(lineage[0].pid),
            lineage: lineage.to_vec(),
            ..Caller::default()
        }
    }

    const STARTER: ProcessId = ProcessId {
        pid: 1,
        start_time: 1,
    };

    #[test]
    fn denies_until_started_then_admits_only_the_tree() {
        let job = JobTree::new(id(50, 1));
        let member = caller(&[id(10, 5), id(1, 1)]);
        assert!(job.admits(&member).is_err(), "nobody before the start");
        job.set_helpers(Vec::new());
        job.set_command(id(10, 5));
        assert!(job.admits(&member).is_ok());
        let outsider = caller(&[id(99, 1)]);
        assert!(job.admits(&outsider).is_err());
    }

    #[test]
    fn admits_the_starters_descendants_until_the_command_is_recorded() {
        let job = JobTree::new(STARTER);
        job.set_helpers(Vec::new());
        // pid 10, a child of the starter: the command, not yet recorded.
        assert!(job.admits(&caller(&[id(10, 5), STARTER])).is_ok());
        assert!(
            job.admits(&caller(&[STARTER])).is_err(),
            "the starter itself is not"
        );
        assert!(
            job.admits(&caller(&[id(10, 5), id(1, 2)])).is_err(),
            "nor a reused starter pid"
        );
        job.set_command(id(11, 5));
        assert!(
            job.admits(&caller(&[id(10, 4), STARTER])).is_err(),
            "once set, only its tree (and processes it leaves behind)"
        );
    }

    #[test]
    fn orphans_adopted_by_the_starter_are_admitted_helpers_never() {
        let job = JobTree::new(STARTER);
        let helper = id(7, 3);
        job.set_helpers(vec![helper]);
        assert!(job.admits(&caller(&[helper, STARTER])).is_err());
        job.set_command(id(10, 5));
        let orphan = caller(&[id(12, 6), STARTER]);
        assert!(job.admits(&orphan).is_ok(), "re-parented to the starter");
        let grandchild_of_orphan = caller(&[id(13, 7), id(12, 6), STARTER]);
        assert!(job.admits(&grandchild_of_orphan).is_ok());
        assert!(job.admits(&caller(&[helper, STARTER])).is_err());
        assert!(
            job.admits(&caller(&[id(14, 6), helper, STARTER])).is_err(),
            "a helper's child"
        );
        assert!(
            job.admits(&caller(&[id(15, 2), STARTER])).is_err(),
            "older than the command: not from its tree"
        );
        job.end();
        assert!(
            job.admits(&orphan).is_err(),
            "nothing after the command exits"
        );
        assert!(job.admits(&caller(&[id(11, 6), id(10, 5)])).is_err());
    }
}
