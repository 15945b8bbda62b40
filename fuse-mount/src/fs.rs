//! The FUSE filesystem: policy at lookup/open, decryption at read.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, InitFlags, KernelConfig, LockOwner, OpenAccMode, OpenFlags, ReplyAttr, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, Request,
};

use crate::audit::AuditLog;
use crate::cache::{BufferPool, ChunkCache, ChunkKey, Plain};
use crate::decisions::Decisions;
use crate::gate::{Gate, list_dir};
use crate::policy::Policy;
use crate::procinfo::{Caller, Facts};
use crate::tree::{Node, NodeKind, ROOT, Tree};

/// How long the kernel may cache names and attributes. The files never
/// change while mounted; the short TTL bounds how long a denied process can
/// see entries that a permitted process looked up (the kernel answers
/// every process from its cache without asking us). docs/PERFORMANCE.md
/// says what a longer one would buy.
const TTL: Duration = Duration::from_secs(1);

/// Chunks decrypted ahead of a sequential reader.
const READ_AHEAD_CHUNKS: u64 = 2;

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

/// Idle chunk buffers kept for reuse.
const POOLED_BUFFERS: usize = 16;

/// The outcome of decrypting one chunk, shared by everyone who waited for it.
type Loaded = Result<Arc<Plain>, String>;

/// State shared with the prefetch threads.
struct Shared {
    tree: Tree,
    cache: ChunkCache,
    pool: Arc<BufferPool>,
    /// Chunks being decrypted right now: a second reader of the same chunk
    /// (a FUSE thread and a prefetch thread, or two FUSE threads serving
    /// parts of one chunk) waits for the first instead of decrypting again.
    loading: Mutex<HashMap<ChunkKey, Arc<OnceLock<Loaded>>>>,
}

impl Shared {
    /// Returns chunk `index` of file `ino`, from the cache or by decrypting
    /// it (once, however many threads ask at the same time).
    fn chunk(&self, ino: u64, index: u64) -> Loaded {
        let key = ChunkKey { ino, index };
        if let Some(plain) = self.cache.get(key) {
            return Ok(plain);
        }
        let slot = {
            let mut loading = self.loading.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(loading.entry(key).or_default())
        };
        let loaded = slot
            .get_or_init(|| {
                // It may have been cached between our miss and now.
                if let Some(plain) = self.cache.get(key) {
                    return Ok(plain);
                }
                let plain = self.decrypt(ino, index).map_err(|e| e.to_string())?;
                self.cache.insert(key, Arc::clone(&plain));
                Ok(plain)
            })
            .clone();
        let mut loading = self.loading.lock().unwrap_or_else(|e| e.into_inner());
        if loading.get(&key).is_some_and(|s| Arc::ptr_eq(s, &slot)) {
            loading.remove(&key);
        }
        loaded
    }

    fn decrypt(&self, ino: u64, index: u64) -> Result<Arc<Plain>, vault_core::Error> {
        let Some(NodeKind::File { plaintext }) = self.tree.get(ino).map(|n| &n.kind) else {
            return Err(vault_core::Error::InvalidArgument("not a file".into()));
        };
        let mut buf = self
            .pool
            .take(plaintext.plaintext_layout().plain_len(index));
        // On failure read_chunk leaves zeros, so the buffer can go back.
        let result = plaintext.read_chunk(index, &mut buf);
        let plain = Plain::pooled(buf, &self.pool);
        result.map(|()| Arc::new(plain))
    }
}

thread_local! {
    /// Per FUSE thread: gathers a read that spans several chunks.
    static GATHER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// One open file handle.
struct Handle {
    ino: u64,
    caller: Caller,
    bytes_read: AtomicU64,
    next_chunk: AtomicU64,
}

/// A read-only filesystem of sealed files.
pub struct VaultFs {
    shared: Arc<Shared>,
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
    prefetch: Option<Mutex<SyncSender<ChunkKey>>>,
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
        let cache = ChunkCache::for_chunks(options.cache_bytes, tree.max_chunk_size());
        let shared = Arc::new(Shared {
            tree,
            cache,
            pool: Arc::new(BufferPool::new(POOLED_BUFFERS)),
            loading: Mutex::new(HashMap::new()),
        });
        // Without a cache, a prefetched chunk would be decrypted, dropped,
        // and decrypted again by its reader.
        let prefetch = (options.prefetch_threads > 0 && options.cache_bytes > 0).then(|| {
            let (tx, rx) = sync_channel::<ChunkKey>(64);
            let rx = Arc::new(Mutex::new(rx));
            for i in 0..options.prefetch_threads {
                let shared = Arc::clone(&shared);
                let rx = Arc::clone(&rx);
                std::thread::Builder::new()
                    .name(format!("mvault-prefetch-{i}"))
                    .spawn(move || prefetch_loop(&shared, &rx))
                    .expect("spawn prefetch thread");
            }
            Mutex::new(tx)
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

    fn handle(&self, fh: FileHandle) -> Option<Arc<Handle>> {
        let handles = self.handles.read().unwrap_or_else(|e| e.into_inner());
        handles.get(&u64::from(fh)).cloned()
    }

    fn request_prefetch(&self, ino: u64, from: u64, chunks: u64) {
        let Some(prefetch) = &self.prefetch else {
            return;
        };
        let tx = prefetch.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for index in from..(from + READ_AHEAD_CHUNKS).min(chunks) {
            let key = ChunkKey { ino, index };
            if self.shared.cache.contains(key) {
                continue;
            }
            match tx.try_send(key) {
                Ok(()) | Err(TrySendError::Full(_)) => {}
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
    }
}

fn prefetch_loop(shared: &Shared, rx: &Mutex<Receiver<ChunkKey>>) {
    loop {
        let key = {
            let rx = rx.lock().unwrap_or_else(|e| e.into_inner());
            match rx.recv() {
                Ok(key) => key,
                Err(_) => return,
            }
        };
        if !shared.cache.contains(key) {
            // Errors surface when the reader itself asks for the chunk.
            let _ = shared.chunk(key.ino, key.index);
        }
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
            next_chunk: AtomicU64::new(0),
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
        let sequential = handle.next_chunk.swap(last + 1, Ordering::Relaxed);
        if sequential == first || sequential == first + 1 {
            self.request_prefetch(u64::from(ino), last + 1, layout.chunks);
        }
        let path = || self.node(ino).map(|n| n.path.as_str()).unwrap_or("?");
        if first == last {
            // The common case: answer straight from the cached chunk.
            let plain = match self.shared.chunk(u64::from(ino), first) {
                Ok(plain) => plain,
                Err(e) => {
                    if crate::integrity::record(path(), e.to_string()) {
                        eprintln!("mvault: {}: {e}", path());
                    }
                    return reply.error(Errno::EIO);
                }
            };
            let start = layout.plain_offset(first);
            let bytes = &plain.bytes()[(offset - start) as usize..(end - start) as usize];
            handle
                .bytes_read
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            return reply.data(bytes);
        }
        GATHER.with_borrow_mut(|out| {
            out.clear();
            // Grow while empty: growing a buffer that holds plaintext would
            // free the old copy without zeroizing it.
            out.reserve((end - offset) as usize);
            for index in first..=last {
                let plain = match self.shared.chunk(u64::from(ino), index) {
                    Ok(plain) => plain,
                    Err(e) => {
                        if crate::integrity::record(path(), e.to_string()) {
                            eprintln!("mvault: {}: {e}", path());
                        }
                        zeroize::Zeroize::zeroize(out.as_mut_slice());
                        out.clear();
                        return reply.error(Errno::EIO);
                    }
                };
                let chunk_start = layout.plain_offset(index);
                let from = offset.max(chunk_start) - chunk_start;
                let to = end.min(chunk_start + plain.bytes().len() as u64) - chunk_start;
                out.extend_from_slice(&plain.bytes()[from as usize..to as usize]);
            }
            handle
                .bytes_read
                .fetch_add(out.len() as u64, Ordering::Relaxed);
            reply.data(out);
            zeroize::Zeroize::zeroize(out.as_mut_slice());
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
