//! The FUSE filesystem: policy at lookup/open, decryption at read.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, InitFlags, KernelConfig, LockOwner, OpenAccMode, OpenFlags, ReplyAttr, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, Request,
};

use crate::audit::AuditLog;
use crate::chunks::Chunks;
use crate::decisions::Decisions;
use crate::gate::{Gate, list_dir};
use crate::policy::Policy;
use crate::prefetch::{ChunkSizes, Prefetcher, ReadCursor};
use crate::procinfo::{Caller, Facts};
use crate::tree::{Node, NodeKind, ROOT, Tree};

/// How long the kernel may cache names and attributes. The files never
/// change while mounted; the short TTL bounds how long a denied process can
/// see entries that a permitted process looked up (the kernel answers
/// every process from its cache without asking us). docs/PERFORMANCE.md
/// says what a longer one would buy.
const TTL: Duration = Duration::from_secs(1);

/// Tunables of a mounted filesystem.
#[derive(Clone, Debug)]
pub struct FsOptions {
    /// Bytes of decrypted chunks kept in memory.
    pub cache_bytes: usize,
    /// Background threads that decrypt ahead of sequential readers (0: off).
    pub prefetch_threads: usize,
    /// Largest read the kernel should send, and its read-ahead.
    pub max_read: u32,
}

impl Default for FsOptions {
    fn default() -> Self {
        FsOptions {
            cache_bytes: 256 << 20,
            prefetch_threads: 2,
            max_read: 1 << 20,
        }
    }
}

thread_local! {
    /// Per FUSE thread: gathers a read that spans several chunks.
    static GATHER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Drops, when it goes out of scope (after `read` replied), the chunks a
/// sequential read finished ([`Chunks::forget_read`]).
struct ForgetRead<'a> {
    chunks: &'a Chunks,
    ino: u64,
    layout: vault_core::PlaintextLayout,
    read: std::ops::RangeInclusive<u64>,
    end: u64,
}

impl Drop for ForgetRead<'_> {
    fn drop(&mut self) {
        self.chunks
            .forget_read(self.ino, &self.layout, self.read.clone(), self.end);
    }
}

/// One open file handle.
struct Handle {
    ino: u64,
    caller: Caller,
    bytes_read: AtomicU64,
    cursor: Arc<ReadCursor>,
}

/// A read-only filesystem of sealed files.
pub struct VaultFs {
    shared: Arc<Chunks>,
    policy: Policy,
    /// What the policy reads about each caller, computed once.
    facts_needed: Facts,
    audit: Option<AuditLog>,
    /// Allows remembered per thread ([`crate::decisions`]).
    decisions: Decisions,
    handles: RwLock<HashMap<u64, Arc<Handle>>>,
    next_fh: AtomicU64,
    owner: (u32, u32),
    options: FsOptions,
    prefetch: Option<Prefetcher>,
}

impl VaultFs {
    /// A filesystem serving `tree` under `policy`, files owned by `owner`.
    pub fn new(
        tree: Tree,
        policy: Policy,
        audit: Option<AuditLog>,
        owner: (u32, u32),
        options: FsOptions,
    ) -> Self {
        let shared = Arc::new(Chunks::new(tree, options.cache_bytes));
        // Without a cache, a prefetched chunk would be decrypted, dropped,
        // and decrypted again by its reader.
        let prefetch = (options.prefetch_threads > 0 && options.cache_bytes > 0).then(|| {
            let shared = Arc::clone(&shared);
            Prefetcher::start(options.prefetch_threads, move |ino, chunks| {
                shared.prefetch(ino, chunks);
            })
        });
        VaultFs {
            shared,
            facts_needed: policy.facts_needed(),
            policy,
            audit,
            decisions: Decisions::default(),
            handles: RwLock::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            owner,
            options,
            prefetch,
        }
    }

    fn node(&self, ino: INodeNo) -> Option<&Node> {
        self.shared.tree.get(u64::from(ino))
    }

    fn attr(&self, ino: u64, node: &Node) -> FileAttr {
        let (kind, size, perm, nlink, blksize) = match &node.kind {
            NodeKind::Dir { children } => (
                FileType::Directory,
                0,
                0o550,
                2 + children.len() as u32,
                4096,
            ),
            NodeKind::File { plaintext } => {
                let layout = plaintext.plaintext_layout();
                (
                    FileType::RegularFile,
                    layout.plaintext_len,
                    0o440,
                    1,
                    layout.chunk_size as u32,
                )
            }
        };
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: node.mtime,
            mtime: node.mtime,
            ctime: node.mtime,
            crtime: node.mtime,
            kind,
            perm,
            nlink,
            uid: self.owner.0,
            gid: self.owner.1,
            rdev: 0,
            flags: 0,
            blksize,
        }
    }

    /// Applies the policy to the caller of `req`; logs denials (and, for
    /// `open`, grants) to the audit log. An allowed open whose record is
    /// lost is refused with EIO unless the log fails open.
    fn authorize(&self, req: &Request, event: &str, path: &str) -> Result<Caller, Errno> {
        self.gate()
            .check_remembered(&self.decisions, req, event, path, event == "open")
    }

    /// Whether the policy admits the caller of `req` (not audited).
    fn allowed(&self, req: &Request) -> bool {
        self.gate().admits(&self.decisions, req)
    }

    fn gate(&self) -> Gate<'_> {
        Gate {
            policy: &self.policy,
            facts_needed: self.facts_needed,
            audit: self.audit.as_ref(),
        }
    }

    /// Answers a read of bytes `within` chunk `index` of file `ino` from
    /// the chunk cache (decrypting the chunk into it once, however many
    /// threads ask).
    fn read_cached(
        &self,
        handle: &Handle,
        (ino, index): (u64, u64),
        within: std::ops::Range<u64>,
        reply: ReplyData,
    ) {
        match self.shared.chunk(ino, index) {
            Ok(plain) => {
                let bytes = &plain.bytes()[within.start as usize..within.end as usize];
                handle
                    .bytes_read
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                reply.data(bytes);
            }
            Err(e) => {
                let path = self.node(INodeNo(ino)).map_or("?", |n| n.path.as_str());
                if crate::integrity::record(path, e.clone()) {
                    eprintln!("mvault: {path}: {e}");
                }
                reply.error(Errno::EIO);
            }
        }
    }

    fn handle(&self, fh: FileHandle) -> Option<Arc<Handle>> {
        let handles = self.handles.read().unwrap_or_else(|e| e.into_inner());
        handles.get(&u64::from(fh)).cloned()
    }
}

impl Filesystem for VaultFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // max_pages follows the larger of these two; a read-only filesystem
        // never sees writes, so both serve large reads.
        let _ = config.set_max_readahead(self.options.max_read);
        let _ = config.set_max_write(self.options.max_read);
        // Lookups in one folder need not queue behind each other: the tree
        // never changes while mounted (a DataLoader's workers open files
        // of the same class folder at once).
        let _ = config.add_capabilities(InitFlags::FUSE_PARALLEL_DIROPS);
        Ok(())
    }

    fn destroy(&mut self) {
        // Summaries of counted denials are written at unmount.
        if let Some(audit) = &self.audit {
            audit.flush();
        }
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let Some(dir) = self.node(parent) else {
            return reply.error(Errno::ENOENT);
        };
        let NodeKind::Dir { children } = &dir.kind else {
            return reply.error(Errno::ENOTDIR);
        };
        let child = children
            .get(name)
            .and_then(|&ino| Some((ino, self.shared.tree.get(ino)?)));
        // Decide before saying whether the name exists: a denied process
        // gets EACCES for every name, so it cannot probe what is served.
        let path = match child {
            Some((_, node)) => Cow::Borrowed(node.path.as_str()),
            None => Cow::Owned(format!(
                "{}/{}",
                dir.path.trim_end_matches('/'),
                name.to_string_lossy()
            )),
        };
        if let Err(e) = self.authorize(req, "lookup", &path) {
            return reply.error(e);
        }
        match child {
            Some((ino, node)) => reply.entry(&TTL, &self.attr(ino, node), Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let Some(node) = self.node(ino) else {
            return reply.error(Errno::ENOENT);
        };
        let allowed = self.allowed(req);
        let mut attr = self.attr(u64::from(ino), node);
        if u64::from(ino) == ROOT {
            // Everyone may stat the mount point, but the link count of a
            // directory counts its entries: that is for permitted callers.
            if !allowed {
                attr.nlink = 2;
            }
        } else if !allowed {
            return reply.error(Errno::EACCES);
        }
        reply.attr(&TTL, &attr);
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let Some(node) = self.node(ino) else {
            return reply.error(Errno::ENOENT);
        };
        if !matches!(node.kind, NodeKind::File { .. }) {
            return reply.error(Errno::EISDIR);
        }
        if flags.acc_mode() != OpenAccMode::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        let caller = match self.authorize(req, "open", &node.path) {
            Ok(caller) => caller,
            Err(e) => return reply.error(e),
        };
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        let handle = Arc::new(Handle {
            ino: u64::from(ino),
            caller,
            bytes_read: AtomicU64::new(0),
            cursor: Arc::default(),
        });
        self.handles
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(fh, handle);
        reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE);
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        // Access was decided at open; the handle is the proof. (Kernel
        // read-ahead may arrive without the reader's pid.)
        let Some(handle) = self.handle(fh).filter(|h| h.ino == u64::from(ino)) else {
            return reply.error(Errno::EBADF);
        };
        let Some(NodeKind::File { plaintext }) = self.node(ino).map(|n| &n.kind) else {
            return reply.error(Errno::EBADF);
        };
        let layout = plaintext.plaintext_layout();
        let end = layout.plaintext_len.min(offset.saturating_add(size as u64));
        if offset >= end {
            return reply.data(&[]);
        }
        let first = offset / layout.chunk_size;
        let last = (end - 1) / layout.chunk_size;
        let sizes = ChunkSizes {
            chunk_size: layout.chunk_size,
            run: self.shared.run_chunks(layout.chunk_size),
        };
        let advance = handle.cursor.advance(first, last, layout.chunks, sizes);
        if let Some(prefetch) = &self.prefetch {
            prefetch.request(u64::from(ino), advance.ahead, sizes, &handle.cursor);
        }
        let _forget = advance.sequential.then(|| {
            // Once the reply is sent: chunks this read finished are dropped.
            ForgetRead {
                chunks: &self.shared,
                ino: u64::from(ino),
                layout,
                read: first..=last,
                end,
            }
        });
        let path = || self.node(ino).map(|n| n.path.as_str()).unwrap_or("?");
        if first == last {
            let start = layout.plain_offset(first);
            // A read of one whole chunk that nobody has decrypted (a random
            // read of small chunks, or the first read of a large one) is
            // decrypted straight into the reply below: the kernel keeps the
            // pages it gets, so caching the chunk would only cost an
            // insert, an eviction and a zeroize.
            let whole = offset == start && end - start == layout.plain_len(first) as u64;
            let key = (u64::from(ino), first);
            if !(whole && self.shared.untouched(key.0, &layout, first)) {
                return self.read_cached(&handle, key, offset - start..end - start, reply);
            }
        }
        GATHER.with_borrow_mut(|out| {
            out.clear();
            // Grow while empty: growing a buffer that holds plaintext would
            // free the old copy without zeroizing it.
            out.reserve((end - offset) as usize);
            let ino = u64::from(ino);
            match self
                .shared
                .gather(ino, plaintext.as_ref(), offset..end, out)
            {
                Ok(()) => {
                    handle
                        .bytes_read
                        .fetch_add(out.len() as u64, Ordering::Relaxed);
                    reply.data(out);
                }
                Err(e) => {
                    if crate::integrity::record(path(), e.clone()) {
                        eprintln!("mvault: {}: {e}", path());
                    }
                    reply.error(Errno::EIO);
                }
            }
            vault_core::wipe(out.as_mut_slice());
            out.clear();
        });
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let handle = self
            .handles
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&u64::from(fh));
        if let (Some(handle), Some(audit), Some(node)) = (handle, &self.audit, self.node(ino)) {
            // A lost release record cannot be undone; alarm.rs reports it.
            let _ = audit.release(
                &handle.caller,
                &node.path,
                handle.bytes_read.load(Ordering::Relaxed),
            );
        }
        reply.ok();
    }

    fn opendir(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let Some(node) = self.node(ino) else {
            return reply.error(Errno::ENOENT);
        };
        if !matches!(node.kind, NodeKind::Dir { .. }) {
            return reply.error(Errno::ENOTDIR);
        }
        match self.authorize(req, "opendir", &node.path) {
            Ok(_) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        reply: ReplyDirectory,
    ) {
        // Access was decided at opendir.
        let Some(node) = self.node(ino) else {
            return reply.error(Errno::ENOENT);
        };
        let NodeKind::Dir { children } = &node.kind else {
            return reply.error(Errno::ENOTDIR);
        };
        let children = children.iter().map(|(name, &child)| {
            let kind = match self.shared.tree.get(child).map(|n| &n.kind) {
                Some(NodeKind::Dir { .. }) => FileType::Directory,
                _ => FileType::RegularFile,
            };
            (child, kind, name.as_os_str())
        });
        list_dir(reply, offset, (u64::from(ino), node.parent), children);
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        let Some(node) = self.node(ino) else {
            return reply.error(Errno::ENOENT);
        };
        if mask.contains(AccessFlags::W_OK) {
            return reply.error(Errno::EROFS);
        }
        match self.authorize(req, "access", &node.path) {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn statfs(&self, req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // `df` must work for everyone, but the totals would tell a denied
        // process how much is served: it gets zeros, as the kernel answers
        // callers that FUSE itself keeps out.
        let (blocks, files) = if self.allowed(req) {
            (
                self.shared.tree.total_bytes().div_ceil(4096),
                self.shared.tree.len() as u64,
            )
        } else {
            (0, 0)
        };
        reply.statfs(blocks, 0, 0, files, 0, 4096, 255, 4096);
    }
}
