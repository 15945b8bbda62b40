//! The FUSE operations of the writable mount.

use std::ffi::OsStr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use fuser::{
    AccessFlags, Errno, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    InitFlags, KernelConfig, LockOwner, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs,
    ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use vault_core::vault::valid_name;

use super::file::{FileData, errno};
use super::nodes::{Kind, ROOT};
use super::{Handle, OutputFs, TTL};
use crate::gate::list_dir;

/// `O_TRUNC` and `O_EXCL` as FUSE passes them in open flags.
const O_TRUNC: i32 = rustix::fs::OFlags::TRUNC.bits() as i32;
const O_EXCL: i32 = rustix::fs::OFlags::EXCL.bits() as i32;

/// A name the vault can store (one path component, valid UTF-8 rules of
/// the manifest).
fn storable(name: &OsStr) -> Result<(), Errno> {
    if valid_name(std::os::unix::ffi::OsStrExt::as_bytes(name)) {
        Ok(())
    } else {
        Err(Errno::EINVAL)
    }
}

impl OutputFs {
    fn child_path(&self, parent: u64, name: &OsStr) -> String {
        let base = self.nodes().display_path(parent);
        format!("{}/{}", base.trim_end_matches('/'), name.to_string_lossy())
    }

    /// Seals `file` if it changed, reporting a failure to the writer.
    fn seal(&self, handle: &Handle) -> Result<(), Errno> {
        let sealed = handle
            .file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .seal(&self.shared.out);
        match sealed {
            Ok(true) => {
                self.shared.committer.changed();
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(e) => {
                eprintln!("mvault: sealing a written file failed: {e}");
                Err(errno(&e))
            }
        }
    }
}

impl OutputFs {
    /// Seals what handle `fh` wrote and answers with the outcome.
    fn seal_reply(&self, fh: FileHandle, reply: ReplyEmpty) {
        let sealed = match self.handle(fh.0).filter(|h| h.writable) {
            Some(handle) => self.seal(&handle),
            None => Ok(()),
        };
        match sealed {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    /// Open flags of a handle that may write: `FOPEN_DIRECT_IO` where the
    /// kernel allows it (see `init`), so the kernel hands the writer's own
    /// pages to the daemon instead of first copying every write into the
    /// page cache of the mount's file (a copy, and page allocations, paid
    /// on the writer's thread for pages nobody reads back from there).
    /// Reads through such a handle come from the daemon, which has the
    /// bytes.
    fn writing_flags(&self) -> FopenFlags {
        if self.direct_writes {
            FopenFlags::FOPEN_DIRECT_IO
        } else {
            FopenFlags::empty()
        }
    }
}

impl Filesystem for OutputFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_write(self.options.max_write);
        let _ = config.set_max_readahead(self.options.max_write);
        // Handles open for writing bypass the page cache (see
        // `writing_flags`) only where the kernel still lets such a file be
        // mapped shared (Linux 6.6+): `np.memmap(mode="w+")` keeps working
        // on older kernels, through the page cache as before.
        self.direct_writes = config
            .add_capabilities(InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP)
            .is_ok();
        Ok(())
    }

    fn destroy(&mut self) {
        let open: Vec<Arc<Handle>> = self
            .handles
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|h| h.writable)
            .cloned()
            .collect();
        for handle in open {
            let _ = self.seal(&handle);
        }
        self.shut_down();
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let path = self.child_path(parent.0, name);
        if let Err(e) = self.authorize(req, "lookup", &path) {
            return reply.error(e);
        }
        let nodes = self.nodes();
        match nodes.child(parent.0, name) {
            Some(ino) => match nodes.get(ino) {
                Some(node) => reply.entry(&TTL, &self.attr(ino, node), Generation(0)),
                None => reply.error(Errno::ENOENT),
            },
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        if ino.0 != ROOT && !self.allowed(req) {
            return reply.error(Errno::EACCES);
        }
        let nodes = self.nodes();
        match nodes.get(ino.0) {
            Some(node) => reply.attr(&TTL, &self.attr(ino.0, node)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let path = self.nodes().display_path(ino.0);
        if let Err(e) = self.authorize(req, "setattr", &path) {
            return reply.error(e);
        }
        let when = mtime.map(|t| match t {
            TimeOrNow::SpecificTime(t) => t,
            TimeOrNow::Now => SystemTime::now(),
        });
        let mut nodes = self.nodes();
        let Some(node) = nodes.get_mut(ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        match &node.kind {
            Kind::Dir(_) => {
                if size.is_some() {
                    return reply.error(Errno::EISDIR);
                }
                if let Some(mode) = mode {
                    node.mode = mode & 0o7777;
                }
                if let Some(t) = when {
                    node.mtime = t;
                }
            }
            Kind::File(data) => {
                let data = Arc::clone(data);
                let mut f = data.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(len) = size
                    && let Err(e) = f.set_len(&self.shared.out, &self.options.spill_dir, len)
                {
                    return reply.error(errno(&e));
                }
                if let Some(mode) = mode {
                    f.mode = mode & 0o7777;
                }
                if let Some(t) = when {
                    f.mtime = t;
                }
            }
        }
        self.shared.committer.changed();
        let node = nodes.get(ino.0).expect("checked above");
        reply.attr(&TTL, &self.attr(ino.0, node));
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let path = self.child_path(parent.0, name);
        if let Err(e) = storable(name).and_then(|()| self.authorize(req, "mkdir", &path)) {
            return reply.error(e);
        }
        let mut nodes = self.nodes();
        if !matches!(nodes.get(parent.0).map(|n| &n.kind), Some(Kind::Dir(_))) {
            return reply.error(Errno::ENOTDIR);
        }
        if nodes.child(parent.0, name).is_some() {
            return reply.error(Errno::EEXIST);
        }
        let kind = Kind::Dir(Default::default());
        let ino = nodes.insert(
            parent.0,
            name,
            mode & !umask & 0o7777,
            SystemTime::now(),
            kind,
        );
        self.shared.committer.changed();
        let node = nodes.get(ino).expect("just inserted");
        reply.entry(&TTL, &self.attr(ino, node), Generation(0));
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let path = self.child_path(parent.0, name);
        let caller = match storable(name).and_then(|()| self.authorize(req, "create", &path)) {
            Ok(caller) => caller,
            Err(e) => return reply.error(e),
        };
        let mut nodes = self.nodes();
        if !matches!(nodes.get(parent.0).map(|n| &n.kind), Some(Kind::Dir(_))) {
            return reply.error(Errno::ENOTDIR);
        }
        let (ino, file) = match nodes.child(parent.0, name) {
            Some(_) if flags & O_EXCL != 0 => return reply.error(Errno::EEXIST),
            Some(ino) => match nodes.get(ino).map(|n| &n.kind) {
                Some(Kind::File(file)) => {
                    let file = Arc::clone(file);
                    if flags & O_TRUNC != 0 {
                        let mut f = file.lock().unwrap_or_else(|e| e.into_inner());
                        if let Err(e) = f.set_len(&self.shared.out, &self.options.spill_dir, 0) {
                            return reply.error(errno(&e));
                        }
                    }
                    (ino, file)
                }
                _ => return reply.error(Errno::EISDIR),
            },
            None => {
                let file = Arc::new(Mutex::new(FileData::created(mode & !umask & 0o7777)));
                let kind = Kind::File(Arc::clone(&file));
                let ino = nodes.insert(parent.0, name, 0, SystemTime::now(), kind);
                (ino, file)
            }
        };
        let attr = self.attr(ino, nodes.get(ino).expect("present"));
        drop(nodes);
        let fh = self.add_handle(Handle {
            ino,
            file,
            caller,
            writable: true,
            bytes_written: Default::default(),
        });
        reply.created(
            &TTL,
            &attr,
            Generation(0),
            FileHandle(fh),
            self.writing_flags(),
        );
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let path = self.nodes().display_path(ino.0);
        let writable = flags.acc_mode() != OpenAccMode::O_RDONLY;
        let event = if writable { "open_write" } else { "open" };
        let caller = match self.authorize(req, event, &path) {
            Ok(caller) => caller,
            Err(e) => return reply.error(e),
        };
        let file = match self.nodes().get(ino.0).map(|n| &n.kind) {
            Some(Kind::File(file)) => Arc::clone(file),
            Some(Kind::Dir(_)) => return reply.error(Errno::EISDIR),
            None => return reply.error(Errno::ENOENT),
        };
        if writable && flags.0 & O_TRUNC != 0 {
            let mut f = file.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = f.set_len(&self.shared.out, &self.options.spill_dir, 0) {
                return reply.error(errno(&e));
            }
        }
        let fh = self.add_handle(Handle {
            ino: ino.0,
            file,
            caller,
            writable,
            bytes_written: Default::default(),
        });
        let flags = if writable {
            self.writing_flags()
        } else {
            FopenFlags::empty()
        };
        reply.opened(FileHandle(fh), flags);
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let Some(handle) = self.handle(fh.0) else {
            return reply.error(Errno::EBADF);
        };
        let mut buf = vault_core::WipedVec::new(vec![0u8; size as usize]);
        let n = handle.file.lock().unwrap_or_else(|e| e.into_inner()).read(
            &self.shared.out,
            &self.options.spill_dir,
            offset,
            &mut buf,
        );
        match n {
            Ok(n) => reply.data(&buf[..n]),
            Err(e) => {
                eprintln!("mvault: read failed: {e}");
                reply.error(errno(&e))
            }
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        // Access was decided at open/create; the handle is the proof.
        let Some(handle) = self.handle(fh.0).filter(|h| h.writable) else {
            return reply.error(Errno::EBADF);
        };
        let written = handle.file.lock().unwrap_or_else(|e| e.into_inner()).write(
            &self.shared.out,
            &self.options.spill_dir,
            offset,
            data,
        );
        match written {
            Ok(()) => {
                handle
                    .bytes_written
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
                reply.written(data.len() as u32)
            }
            Err(e) => {
                eprintln!("mvault: write failed: {e}");
                reply.error(errno(&e))
            }
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Every close(2) of a descriptor of the file, including the copy a
        // forked child closes at exec while the parent still writes: so the
        // file is not sealed here (that would end a stream mid-file); what
        // can be sealed is written out, so a full disk fails the close. The
        // file is sealed at release (its last close), at fsync, and at
        // unmount.
        let flushed = match self.handle(fh.0).filter(|h| h.writable) {
            Some(handle) => handle
                .file
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .flush(),
            None => Ok(()),
        };
        match flushed {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // The content sealed durably; its commit follows (see committer).
        self.seal_reply(fh, reply);
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
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
            .remove(&fh.0);
        if let Some(handle) = handle {
            if handle.writable {
                // The last close: the file is sealed now (see flush).
                let _ = self.seal(&handle);
                if let Some(audit) = &self.shared.audit {
                    let path = self.nodes().display_path(handle.ino);
                    let bytes = handle.bytes_written.load(Ordering::Relaxed);
                    let _ = audit.written(&handle.caller, &path, bytes);
                }
            }
        }
        reply.ok();
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let path = self.child_path(parent.0, name);
        if let Err(e) = self.authorize(req, "unlink", &path) {
            return reply.error(e);
        }
        let mut nodes = self.nodes();
        match nodes.child(parent.0, name).and_then(|i| nodes.get(i)) {
            Some(node) if matches!(node.kind, Kind::Dir(_)) => return reply.error(Errno::EISDIR),
            Some(_) => {}
            None => return reply.error(Errno::ENOENT),
        }
        nodes.remove(parent.0, name);
        self.shared.committer.changed();
        reply.ok();
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let path = self.child_path(parent.0, name);
        if let Err(e) = self.authorize(req, "rmdir", &path) {
            return reply.error(e);
        }
        let mut nodes = self.nodes();
        match nodes.child(parent.0, name).and_then(|i| nodes.get(i)) {
            Some(node) => match &node.kind {
                Kind::Dir(children) if children.is_empty() => {}
                Kind::Dir(_) => return reply.error(Errno::ENOTEMPTY),
                Kind::File(_) => return reply.error(Errno::ENOTDIR),
            },
            None => return reply.error(Errno::ENOENT),
        }
        nodes.remove(parent.0, name);
        self.shared.committer.changed();
        reply.ok();
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let path = self.child_path(parent.0, name);
        if let Err(e) = storable(newname).and_then(|()| self.authorize(req, "rename", &path)) {
            return reply.error(e);
        }
        if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            return reply.error(Errno::EINVAL);
        }
        let mut nodes = self.nodes();
        let Some(ino) = nodes.child(parent.0, name) else {
            return reply.error(Errno::ENOENT);
        };
        if !matches!(nodes.get(newparent.0).map(|n| &n.kind), Some(Kind::Dir(_))) {
            return reply.error(Errno::ENOTDIR);
        }
        let moving_dir = matches!(nodes.get(ino).map(|n| &n.kind), Some(Kind::Dir(_)));
        if moving_dir && nodes.is_within(newparent.0, ino) {
            return reply.error(Errno::EINVAL);
        }
        if let Some(target) = nodes.child(newparent.0, newname) {
            if target == ino {
                return reply.ok();
            }
            if flags.contains(RenameFlags::RENAME_NOREPLACE) {
                return reply.error(Errno::EEXIST);
            }
            match nodes.get(target).map(|n| &n.kind) {
                Some(Kind::Dir(children)) if !moving_dir => {
                    let _ = children;
                    return reply.error(Errno::EISDIR);
                }
                Some(Kind::Dir(children)) if !children.is_empty() => {
                    return reply.error(Errno::ENOTEMPTY);
                }
                Some(Kind::File(_)) if moving_dir => return reply.error(Errno::ENOTDIR),
                _ => {}
            }
            nodes.remove(newparent.0, newname);
        }
        nodes.relink(ino, newparent.0, newname);
        self.shared.committer.changed();
        reply.ok();
    }

    fn opendir(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let path = self.nodes().display_path(ino.0);
        match self.authorize(req, "opendir", &path) {
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
        let nodes = self.nodes();
        let Some(node) = nodes.get(ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        let Kind::Dir(children) = &node.kind else {
            return reply.error(Errno::ENOTDIR);
        };
        let children = children.iter().map(|(name, &child)| {
            let kind = match nodes.get(child).map(|n| &n.kind) {
                Some(Kind::Dir(_)) => FileType::Directory,
                _ => FileType::RegularFile,
            };
            (child, kind, name.as_os_str())
        });
        list_dir(reply, offset, (ino.0, node.parent), children);
    }

    fn fsyncdir(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let path = self.nodes().display_path(ino.0);
        if let Err(e) = self.authorize(req, "fsyncdir", &path) {
            return reply.error(e);
        }
        match self.shared.commit() {
            Ok(()) => reply.ok(),
            Err(_) => reply.error(Errno::EIO),
        }
    }

    fn access(&self, req: &Request, ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        let path = self.nodes().display_path(ino.0);
        match self.authorize(req, "access", &path) {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn statfs(&self, req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let (blocks, free) = match (
            self.allowed(req),
            rustix::fs::statvfs(&self.options.spill_dir),
        ) {
            (true, Ok(st)) => (
                st.f_blocks * st.f_frsize / 4096,
                st.f_bavail * st.f_frsize / 4096,
            ),
            _ => (0, 0),
        };
        reply.statfs(blocks, free, free, 0, 0, 4096, 255, 4096);
    }
}
