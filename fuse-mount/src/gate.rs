//! What the read-only and the writable filesystems share at the door:
//! the policy decision for one request with its audit record (optionally
//! remembered per thread, [`crate::decisions`]), and the listing of a
//! folder into a `readdir` reply.

use std::ffi::OsStr;

use fuser::{Errno, FileType, INodeNo, ReplyDirectory, Request};

use crate::audit::{AuditLog, Recorded};
use crate::decisions::{Decisions, ThreadKey};
use crate::policy::{Decision, Policy};
use crate::procinfo::{Caller, Facts};
use crate::witness::Witness;

/// The policy of a mount, what it reads about callers, and its audit log.
pub(crate) struct Gate<'a> {
    pub policy: &'a Policy,
    pub facts_needed: Facts,
    pub audit: Option<&'a AuditLog>,
}

impl Gate<'_> {
    /// Applies the policy to the caller of `req`; logs the decision when
    /// `audited` (denials always). An allowed request whose record is lost
    /// is refused with EIO unless the log fails open: no unaudited access
    /// (alarm.rs says why).
    pub fn check(
        &self,
        req: &Request,
        event: &str,
        path: &str,
        audited: bool,
    ) -> Result<Caller, Errno> {
        let audited = audited && self.audit.is_some();
        let facts = if audited {
            self.facts_needed.union(Facts::AUDIT)
        } else {
            self.facts_needed
        };
        let mut caller = Caller::inspect(req.pid(), req.uid(), req.gid(), facts);
        let decision = self.policy.check(&caller);
        if let Some(audit) = self.audit
            && (audited || !decision.allowed())
        {
            caller.add(Facts::AUDIT);
            record(audit, event, &caller, path, &decision)?;
        }
        match decision {
            Decision::Allow => Ok(caller),
            Decision::Deny(_) => Err(Errno::EACCES),
        }
    }

    /// [`Gate::check`], answered from `decisions` when they hold an allow
    /// for this thread (an audited allow is still written, with the facts
    /// read now), and remembering a new allow. Denials take the full path.
    pub fn check_remembered(
        &self,
        decisions: &Decisions,
        req: &Request,
        event: &str,
        path: &str,
        audited: bool,
    ) -> Result<Caller, Errno> {
        let key = self.key(req);
        if let Some(pid) = key.and_then(|key| decisions.allowed(self.policy, &key)) {
            let (tid, uid, gid) = (req.pid(), req.uid(), req.gid());
            let Some(audit) = self.audit.filter(|_| audited) else {
                return Ok(Caller {
                    tid,
                    pid: Some(pid),
                    uid,
                    gid,
                    ..Caller::default()
                });
            };
            let caller = Caller::inspect(tid, uid, gid, Facts::AUDIT);
            // A thread that vanished meanwhile is decided (denied) afresh.
            if caller.pid == Some(pid) {
                record(audit, event, &caller, path, &Decision::Allow)?;
                return Ok(caller);
            }
        }
        let witness = self.witness(decisions, key);
        let settled = self.policy.job_settled();
        let caller = self.check(req, event, path, audited)?;
        if let (Some(witnessed), Some(pid)) = (witness, caller.pid) {
            decisions.remember(self.policy, settled, witnessed, pid);
        }
        Ok(caller)
    }

    /// Whether the policy admits the caller of `req`, not audited (what
    /// `getattr` and `statfs` ask), answered from and kept in `decisions`.
    pub fn admits(&self, decisions: &Decisions, req: &Request) -> bool {
        let key = self.key(req);
        if key.is_some_and(|key| decisions.allowed(self.policy, &key).is_some()) {
            return true;
        }
        let witness = self.witness(decisions, key);
        let settled = self.policy.job_settled();
        let caller = Caller::inspect(req.pid(), req.uid(), req.gid(), self.facts_needed);
        let allowed = self.policy.check(&caller).allowed();
        if allowed && let (Some(witnessed), Some(pid)) = (witness, caller.pid) {
            decisions.remember(self.policy, settled, witnessed, pid);
        }
        allowed
    }

    /// The decision-cache key of `req`'s thread, when the policy lets
    /// decisions be remembered (no system call).
    fn key(&self, req: &Request) -> Option<ThreadKey> {
        if !self.policy.decisions_are_stable() {
            return None;
        }
        ThreadKey::new(req.pid(), req.uid(), req.gid())
    }

    /// `key` with evidence of which thread holds its id, taken before a
    /// decision that may be remembered ([`Decisions::remember`]).
    fn witness(
        &self,
        decisions: &Decisions,
        key: Option<ThreadKey>,
    ) -> Option<(ThreadKey, Witness)> {
        let key = key?;
        Some((key, decisions.witness(self.policy, &key)?))
    }
}

/// Writes the record of `decision`; a lost record of an allow refuses it
/// with EIO unless the log fails open.
fn record(
    audit: &AuditLog,
    event: &str,
    caller: &Caller,
    path: &str,
    decision: &Decision,
) -> Result<(), Errno> {
    let recorded = audit.decision(event, caller, path, decision);
    if recorded == Recorded::Lost && decision.allowed() && !audit.fail_open() {
        return Err(Errno::EIO);
    }
    Ok(())
}

/// Answers `readdir` from `offset` with `.` (`ino`), `..` (`parent`) and
/// `children`.
pub(crate) fn list_dir<'n>(
    mut reply: ReplyDirectory,
    offset: u64,
    (ino, parent): (u64, u64),
    children: impl Iterator<Item = (u64, FileType, &'n OsStr)>,
) {
    let dots = [(ino, OsStr::new(".")), (parent, OsStr::new(".."))];
    let entries = dots
        .into_iter()
        .map(|(i, name)| (i, FileType::Directory, name))
        .chain(children);
    for (i, (child, kind, name)) in entries.enumerate().skip(offset as usize) {
        if reply.add(INodeNo(child), (i + 1) as u64, kind, name) {
            break;
        }
    }
    reply.ok();
}
