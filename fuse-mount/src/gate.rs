//! What the read-only and the writable filesystems share at the door:
//! the policy decision for one request with its audit record, and the
//! listing of a folder into a `readdir` reply.

use std::ffi::OsStr;

use fuser::{Errno, FileType, INodeNo, ReplyDirectory, Request};

use crate::audit::{AuditLog, Recorded};
use crate::policy::{Decision, Policy};
use crate::procinfo::{Caller, Facts};

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
            let recorded = audit.decision(event, &caller, path, &decision);
            if recorded == Recorded::Lost && decision.allowed() && !audit.fail_open() {
                return Err(Errno::EIO);
            }
        }
        match decision {
            Decision::Allow => Ok(caller),
            Decision::Deny(_) => Err(Errno::EACCES),
        }
    }
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
