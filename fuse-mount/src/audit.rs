//! Append-only JSON-lines audit log of opens, denials and releases.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;
use std::time::SystemTime;

use serde::Serialize;

use crate::policy::Decision;
use crate::procinfo::Caller;

/// One audit record.
#[derive(Debug, Serialize)]
pub struct Record<'a> {
    /// RFC 3339 UTC time with milliseconds.
    pub time: String,
    /// `open`, `lookup`, `opendir`, `access` or `release`.
    pub event: &'a str,
    /// `allow` or `deny` (absent for `release`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<&'a str>,
    /// Why access was denied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
    /// Process id (thread group) of the caller.
    pub pid: Option<i32>,
    /// Thread id reported by FUSE.
    pub tid: u32,
    /// Caller's uid.
    pub uid: u32,
    /// Caller's gid.
    pub gid: u32,
    /// Caller's executable.
    pub exe: Option<String>,
    /// Caller's command line.
    pub cmdline: Option<&'a str>,
    /// Path inside the mount.
    pub path: &'a str,
    /// Plaintext bytes this daemon served for the handle (on `release`;
    /// reads answered by the kernel page cache are not counted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_read: Option<u64>,
}

/// Where audit records go.
pub struct AuditLog {
    file: Mutex<File>,
}

impl AuditLog {
    /// Opens (creating 0600) `path` for appending.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        Ok(AuditLog {
            file: Mutex::new(file),
        })
    }

    /// Records an access decision.
    pub fn decision(&self, event: &str, caller: &Caller, path: &str, decision: &Decision) {
        let (word, reason) = match decision {
            Decision::Allow => ("allow", None),
            Decision::Deny(why) => ("deny", Some(why.as_str())),
        };
        self.write(&Record {
            decision: Some(word),
            reason,
            ..base(event, caller, path)
        });
    }

    /// Records the end of a file handle with the bytes it read.
    pub fn release(&self, caller: &Caller, path: &str, bytes_read: u64) {
        self.write(&Record {
            bytes_read: Some(bytes_read),
            ..base("release", caller, path)
        });
    }

    fn write(&self, record: &Record<'_>) {
        let mut line = serde_json::to_vec(record).expect("records serialize");
        line.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        // One write per line, so concurrent records never interleave.
        if let Err(e) = file.write_all(&line) {
            eprintln!("mvault: cannot write the audit log: {e}");
        }
    }
}

fn base<'a>(event: &'a str, caller: &'a Caller, path: &'a str) -> Record<'a> {
    Record {
        time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        event,
        decision: None,
        reason: None,
        pid: caller.pid,
        tid: caller.tid,
        uid: caller.uid,
        gid: caller.gid,
        exe: caller.exe.as_ref().map(|p| p.display().to_string()),
        cmdline: caller.cmdline.as_deref(),
        path,
        bytes_read: None,
    }
}
