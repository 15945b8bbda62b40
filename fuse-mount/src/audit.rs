//! Append-only JSON-lines audit log of opens, denials and releases.
//!
//! The log fails closed: an allowed `open` whose record cannot be written
//! whole is refused (the filesystem answers EIO) unless the mount was
//! started with `--audit-fail-open`. Repeated denials of one process are
//! coalesced ([`coalesce`]), the file is opened safely and never holds a
//! torn line (`sink`), and failures are reported on stderr and syslog
//! (`alarm`). Records can go to journald or syslog instead of a file
//! ([`system`]), under the same fail-closed rule.

mod alarm;
pub mod coalesce;
mod sink;
pub mod system;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use serde::Serialize;

pub use sink::OpenError;
pub use system::SystemLog;

use crate::policy::Decision;
use crate::procinfo::{Caller, ProcessId};
use alarm::Health;
use coalesce::{Coalescer, DenyKey, Suppressed, Verdict};
use sink::{Sink, Written};
use system::SystemSink;

/// Where `--audit-log` sends records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuditTarget {
    /// A JSON-lines file.
    File(PathBuf),
    /// journald or syslog.
    System(SystemLog),
}

impl AuditTarget {
    /// `journal` and `syslog` name the system logs; anything else is a
    /// file path (`./journal` for a file of that name).
    pub fn from_arg(arg: &Path) -> AuditTarget {
        match arg.to_str() {
            Some("journal") => AuditTarget::System(SystemLog::Journal),
            Some("syslog") => AuditTarget::System(SystemLog::Syslog),
            _ => AuditTarget::File(arg.to_path_buf()),
        }
    }

    /// How messages name it.
    pub fn describe(&self) -> String {
        match self {
            AuditTarget::File(path) => path.display().to_string(),
            AuditTarget::System(log) => log.describe(),
        }
    }
}

/// An open audit destination.
enum Output {
    File(Sink),
    System(SystemSink),
}

/// One audit record.
#[derive(Debug, Serialize)]
pub struct Record<'a> {
    /// RFC 3339 UTC time with milliseconds.
    pub time: String,
    /// `open`, `lookup`, `opendir`, `access`, `release` or `deny_summary`.
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
    /// Caller's command line (bytes that are not UTF-8 escaped as `\xNN`).
    pub cmdline: Option<&'a str>,
    /// Path inside the mount (for `deny_summary`: of the last denial).
    pub path: &'a str,
    /// Plaintext bytes this daemon served for the handle (on `release`;
    /// reads answered by the kernel page cache are not counted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_read: Option<u64>,
    /// Writable mounts: plaintext bytes written (a release) or sealed (a
    /// commit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_written: Option<u64>,
    /// Writable mounts: the vault generation a commit made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    /// On `deny_summary`: denials of this process at this kind of request
    /// (`of`) for this reason that were counted instead of logged since
    /// its last logged denial.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// On `deny_summary`: the kind of request those denials were.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub of: Option<&'a str>,
}

/// How the log behaves when it cannot be written.
#[derive(Clone, Copy, Debug, Default)]
pub struct AuditOptions {
    /// Serve allowed opens even when their record is lost.
    pub fail_open: bool,
}

/// Whether a record reached the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// Written whole (or, for a repeated denial, counted for a summary).
    Yes,
    /// Lost: the file could not take it.
    Lost,
}

/// The last denial left out of a window, for its summary.
struct LastDenial {
    caller: Caller,
    path: String,
}

struct State {
    sink: Output,
    health: Health,
    /// A line was left torn (cutting it off failed): the next record
    /// starts on a new line.
    torn: bool,
    denials: Coalescer<LastDenial>,
    /// The vault served, on every record, when it is remote (its URL
    /// without credentials).
    vault: Option<String>,
}

/// A record as written: with the remote vault's URL, if any.
#[derive(Serialize)]
struct Line<'a> {
    #[serde(flatten)]
    record: &'a Record<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vault: Option<&'a str>,
}

/// Where audit records go.
pub struct AuditLog {
    state: Mutex<State>,
    options: AuditOptions,
}

impl AuditLog {
    /// Opens (creating 0600) `path` for appending; see [`OpenError`] for
    /// what is refused.
    pub fn open(path: &Path, options: AuditOptions) -> Result<Self, OpenError> {
        Self::open_target(&AuditTarget::File(path.to_path_buf()), options)
    }

    /// Opens a file (as [`AuditLog::open`]) or connects to a system log,
    /// which must be listening.
    pub fn open_target(target: &AuditTarget, options: AuditOptions) -> Result<Self, OpenError> {
        let sink = match target {
            AuditTarget::File(path) => Output::File(Sink::open(path)?),
            AuditTarget::System(log) => {
                Output::System(SystemSink::open(*log).map_err(|source| OpenError::Io {
                    path: log.socket(),
                    source,
                })?)
            }
        };
        Ok(AuditLog {
            state: Mutex::new(State {
                sink,
                health: Health::new(target.describe(), options.fail_open),
                torn: false,
                denials: Coalescer::new(Instant::now()),
                vault: None,
            }),
            options,
        })
    }

    /// Names `url` (a remote vault's URL, already without credentials) in
    /// every record, as `"vault"`.
    pub fn for_vault(self, url: String) -> Self {
        self.lock().vault = Some(url);
        self
    }

    /// Whether allowed opens are served even when their record is lost.
    pub fn fail_open(&self) -> bool {
        self.options.fail_open
    }

    /// Records an access decision. Denials of a process that was just
    /// denied at the same kind of request for the same reason are counted,
    /// not written.
    pub fn decision(
        &self,
        event: &str,
        caller: &Caller,
        path: &str,
        decision: &Decision,
    ) -> Recorded {
        let (word, reason) = match decision {
            Decision::Allow => ("allow", None),
            Decision::Deny(why) => ("deny", Some(why.as_str())),
        };
        // Read /proc before taking the lock.
        let denial = reason.map(|reason| {
            let key = DenyKey {
                process: process_of(caller),
                event: event.to_owned(),
                reason: reason.to_owned(),
            };
            let last = LastDenial {
                caller: caller.clone(),
                path: path.to_owned(),
            };
            (key, last)
        });
        let mut state = self.lock();
        if let Some((key, last)) = denial {
            match state.denials.deny(key, last, Instant::now()) {
                Verdict::Counted => return Recorded::Yes,
                Verdict::Log(ended) => state.summarize(ended),
            }
        } else {
            let ended = state.denials.sweep(Instant::now());
            state.summarize(ended);
        }
        state.write(&Record {
            decision: Some(word),
            reason,
            ..base(event, caller, path)
        })
    }

    /// Records the end of a file handle with the bytes it read.
    pub fn release(&self, caller: &Caller, path: &str, bytes_read: u64) -> Recorded {
        self.lock().write(&Record {
            bytes_read: Some(bytes_read),
            ..base("release", caller, path)
        })
    }

    /// Writes the summaries of all counted denials (at unmount).
    /// Writable mounts: a handle that wrote was closed; `bytes` written.
    pub fn written(&self, caller: &Caller, path: &str, bytes: u64) -> Recorded {
        self.lock().write(&Record {
            bytes_written: Some(bytes),
            ..base("release", caller, path)
        })
    }

    /// Writable mounts: generation `generation` was committed by mvault
    /// itself (`caller`), sealing `bytes` new bytes in `files` files.
    pub fn commit(&self, caller: &Caller, generation: u64, bytes: u64, files: u64) -> Recorded {
        self.lock().write(&Record {
            bytes_written: Some(bytes),
            generation: Some(generation),
            count: Some(files),
            ..base("commit", caller, "/")
        })
    }

    pub fn flush(&self) {
        let mut state = self.lock();
        let ended = state.denials.drain();
        state.summarize(ended);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        self.flush();
        let lost = self.lock().health.lost_count();
        if lost > 0 {
            alarm::report(&format!(
                "{lost} audit records could not be written while mounted"
            ));
        }
    }
}

impl State {
    fn summarize(&mut self, ended: Vec<Suppressed<LastDenial>>) {
        for s in ended {
            self.write(&Record {
                decision: Some("deny"),
                reason: Some(&s.key.reason),
                count: Some(s.count),
                of: Some(&s.key.event),
                ..base("deny_summary", &s.last.caller, &s.last.path)
            });
        }
    }

    fn write(&mut self, record: &Record<'_>) -> Recorded {
        let sink = match &self.sink {
            Output::File(sink) => sink,
            Output::System(sink) => {
                return match sink.send(record) {
                    Ok(()) => {
                        self.health.written();
                        Recorded::Yes
                    }
                    Err(e) => {
                        self.health.lost(&e);
                        Recorded::Lost
                    }
                };
            }
        };
        let mut line = Vec::with_capacity(512);
        if self.torn {
            line.push(b'\n');
        }
        let whole = Line {
            record,
            vault: self.vault.as_deref(),
        };
        serde_json::to_writer(&mut line, &whole).expect("records serialize");
        line.push(b'\n');
        match sink.write_line(&line) {
            Written::Whole => {
                self.torn = false;
                self.health.written();
                Recorded::Yes
            }
            Written::Lost(e) => {
                self.health.lost(&e);
                Recorded::Lost
            }
            Written::Torn(e) => {
                self.torn = true;
                self.health.lost(&e);
                Recorded::Lost
            }
        }
    }
}

/// The identity coalesced denials are counted under: pid and start time
/// (a reused pid is another process), or the thread id if /proc was
/// unreadable.
fn process_of(caller: &Caller) -> ProcessId {
    let Some(pid) = caller.pid else {
        return ProcessId {
            pid: caller.tid as i32,
            start_time: 0,
        };
    };
    caller
        .lineage
        .first()
        .filter(|p| p.pid == pid)
        .copied()
        .or_else(|| ProcessId::of(pid))
        .unwrap_or(ProcessId { pid, start_time: 0 })
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
        bytes_written: None,
        generation: None,
        count: None,
        of: None,
    }
}
