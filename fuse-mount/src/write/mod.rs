//! The writable mount (`mvault mount --writable`, `mvault run --output`):
//! a folder whose files are sealed into a directory vault as they are
//! written, under the same per-process policy and audit log as reads.
//!
//! - `file`: one file's bytes while written (streamed into a new object,
//!   or spilled to encrypted scratch) and what the vault records of it;
//! - `nodes`: the namespace (inodes, folders, renames) and the tree a
//!   commit records;
//! - `committer`: when commits happen (debounced; at once on `fsyncdir`
//!   and unmount);
//! - `ops`: the FUSE operations.
//!
//! A file reaches the vault only once sealed whole (at close, `fsync`),
//! then at the next commit; a reader of the vault never sees it half
//! written, and a crash leaves the last committed generation.

mod committer;
mod file;
mod nodes;
mod ops;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use fuser::{Errno, FileAttr, FileType, INodeNo, Request};
use vault_core::vault::OutputVault;

use crate::audit::AuditLog;
use crate::decisions::Decisions;
use crate::gate::Gate;
use crate::policy::Policy;
use crate::procinfo::{Caller, Facts};
use committer::Committer;
use nodes::{Kind, Node, Nodes, SharedFile};

/// How long the kernel may cache names and attributes (files change).
const TTL: Duration = Duration::from_millis(200);

/// Tunables of a writable mount.
#[derive(Clone, Debug)]
pub struct OutputOptions {
    /// Where files written out of order are spilled (encrypted).
    pub spill_dir: PathBuf,
    /// Largest write the kernel should send.
    pub max_write: u32,
}

impl Default for OutputOptions {
    fn default() -> Self {
        OutputOptions {
            spill_dir: std::env::temp_dir(),
            max_write: 1 << 20,
        }
    }
}

/// What the FUSE threads and the committer thread share.
struct Shared {
    out: OutputVault,
    nodes: Mutex<Nodes>,
    committer: Arc<Committer>,
    audit: Option<AuditLog>,
    /// Set when a commit failed, until one succeeds (for the exit status).
    failed: Mutex<Option<String>>,
}

impl Shared {
    /// Commits the namespace as it is now (see `committer`). Returns the
    /// error of a failed commit (also kept for the exit status).
    fn commit(&self) -> Result<(), String> {
        let _running = self
            .committer
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if !self.committer.take() {
            return match self
                .failed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
            {
                Some(message) => Err(message),
                None => Ok(()),
            };
        }
        let snapshot = self
            .nodes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .snapshot();
        let result = self.out.commit(snapshot.tree);
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(summary) => {
                for (data, sealed) in &snapshot.sealed {
                    data.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .committed(sealed);
                }
                if let Some(audit) = &self.audit {
                    let me = Caller::inspect(
                        std::process::id(),
                        rustix::process::geteuid().as_raw(),
                        rustix::process::getegid().as_raw(),
                        Facts::AUDIT,
                    );
                    let _ = audit.commit(
                        &me,
                        summary.generation,
                        summary.bytes_sealed,
                        summary.files_sealed,
                    );
                }
                *failed = None;
                Ok(())
            }
            Err(e) => {
                let message = format!("commit failed: {e}");
                if failed.as_deref() != Some(message.as_str()) {
                    eprintln!("mvault: {message}");
                }
                *failed = Some(message.clone());
                // Tried again after the next quiet period (space may free).
                self.committer.changed();
                Err(message)
            }
        }
    }
}

/// One open file handle.
struct Handle {
    ino: u64,
    file: SharedFile,
    caller: Caller,
    writable: bool,
    bytes_written: AtomicU64,
}

/// The writable filesystem (see the module doc).
pub struct OutputFs {
    shared: Arc<Shared>,
    policy: Policy,
    facts_needed: Facts,
    /// Allows remembered per thread ([`crate::decisions`]), as on the
    /// read-only mount: `tar x` asks for every file.
    decisions: Decisions,
    handles: RwLock<HashMap<u64, Arc<Handle>>>,
    next_fh: AtomicU64,
    owner: (u32, u32),
    options: OutputOptions,
    committer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Handles open for writing bypass the page cache (set at `init`
    /// where the kernel also lets such files be mapped shared).
    direct_writes: bool,
}

/// What the mounting process keeps of a writable mount: the last commit's
/// outcome once the mount has ended.
#[derive(Clone)]
pub struct OutputStatus(Arc<Shared>);

impl OutputStatus {
    /// The generation last committed.
    pub fn generation(&self) -> u64 {
        self.0.out.generation()
    }

    /// Commits the changes still waiting (none: nothing happens); the
    /// error says why a commit failed.
    pub fn commit(&self) -> Result<(), String> {
        self.0.commit()
    }

    /// Why the last commit failed, if it did.
    pub fn failure(&self) -> Option<String> {
        self.0
            .failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl OutputFs {
    /// A writable filesystem over `out`, under `policy`, owned by `owner`.
    pub fn new(
        out: OutputVault,
        policy: Policy,
        audit: Option<AuditLog>,
        owner: (u32, u32),
        options: OutputOptions,
    ) -> (Self, OutputStatus) {
        let nodes = Nodes::from_entries(out.entries());
        let shared = Arc::new(Shared {
            out,
            nodes: Mutex::new(nodes),
            committer: Arc::new(Committer::default()),
            audit,
            failed: Mutex::new(None),
        });
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("mvault-commit".into())
                .spawn(move || {
                    let committer = Arc::clone(&shared.committer);
                    committer.run(|| {
                        let _ = shared.commit();
                    });
                })
                .expect("spawn the commit thread")
        };
        let status = OutputStatus(Arc::clone(&shared));
        let fs = OutputFs {
            shared,
            facts_needed: policy.facts_needed(),
            policy,
            decisions: Decisions::default(),
            handles: RwLock::new(HashMap::new()),
            direct_writes: false,
            next_fh: AtomicU64::new(1),
            owner,
            options,
            committer_thread: Mutex::new(Some(thread)),
        };
        (fs, status)
    }

    fn nodes(&self) -> std::sync::MutexGuard<'_, Nodes> {
        self.shared.nodes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies the policy to the caller of `req`; every write-side event
    /// and every open is audited, denials always.
    fn authorize(&self, req: &Request, event: &str, path: &str) -> Result<Caller, Errno> {
        self.gate().check_remembered(
            &self.decisions,
            req,
            event,
            path,
            event != "lookup" && event != "access",
        )
    }

    /// Whether the policy admits the caller of `req` (not audited).
    fn allowed(&self, req: &Request) -> bool {
        self.gate().admits(&self.decisions, req)
    }

    fn gate(&self) -> Gate<'_> {
        Gate {
            policy: &self.policy,
            facts_needed: self.facts_needed,
            audit: self.shared.audit.as_ref(),
        }
    }

    fn attr(&self, ino: u64, node: &Node) -> FileAttr {
        let (kind, size, perm, mtime) = match &node.kind {
            Kind::Dir(_) => (FileType::Directory, 0, node.mode, node.mtime),
            Kind::File(data) => {
                let f = data.lock().unwrap_or_else(|e| e.into_inner());
                (FileType::RegularFile, f.size(), f.mode, f.mtime)
            }
        };
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: mtime,
            mtime,
            ctime: mtime,
            crtime: mtime,
            kind,
            perm: (perm & 0o7777) as u16,
            nlink: if kind == FileType::Directory { 2 } else { 1 },
            uid: self.owner.0,
            gid: self.owner.1,
            rdev: 0,
            flags: 0,
            blksize: 1 << 20,
        }
    }

    fn handle(&self, fh: u64) -> Option<Arc<Handle>> {
        self.handles
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&fh)
            .cloned()
    }

    fn add_handle(&self, handle: Handle) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.handles
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(fh, Arc::new(handle));
        fh
    }

    /// Ends the committer thread and makes the last commit (unmount).
    fn shut_down(&self) {
        self.shared.committer.stop();
        if let Some(t) = self
            .committer_thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = t.join();
        }
        let _ = self.shared.commit();
        if let Some(audit) = &self.shared.audit {
            audit.flush();
        }
    }
}
