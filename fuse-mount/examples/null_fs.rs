//! The FUSE floor: a filesystem that does nothing but answer.
//!
//! Serves, under the mount point, `big` (a file of zeros, `--big-mib` MiB)
//! and `tree/dDDD/fFFFFF` (`--dirs` folders of `--files` files of
//! `--file-kib` KiB of zeros), with the FUSE settings of an mvault mount
//! (same worker threads, cloned `/dev/fuse` descriptors, 1 MiB read-ahead,
//! kept page cache, 1 s attribute TTL) but no policy, no decryption, no
//! cache: every read is answered from a static buffer. What a benchmark
//! reaches through it is the most any FUSE server on this kernel and
//! machine can reach with these settings; docs/PERFORMANCE.md compares
//! mvault and gocryptfs against it.
//!
//! With `--sink FILE` it is also the floor for writes: the mount is
//! writable and serves `out` as well, whose writes are handed to FILE with
//! `pwrite` at their offsets before the reply (`/dev/null` discards them;
//! `out` reads as zeros, like every file here), with the FUSE settings of
//! `mvault mount --writable` (1 MiB writes, `FOPEN_DIRECT_IO` for handles
//! that write where the kernel allows it) but no sealing.
//!
//!     cargo run --release -p fuse-mount --example null_fs -- MOUNTPOINT
//!     null_fs --sink /dev/shm/floor.bin MOUNTPOINT; dd ... of=MOUNTPOINT/out
//!
//! Runs until the mount point is unmounted (`fusermount3 -u MOUNTPOINT`).

use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenAccMode, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory,
    ReplyEntry, ReplyOpen, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

const TTL: Duration = Duration::from_secs(1);
const ROOT: u64 = 1;
const BIG: u64 = 2;
const TREE: u64 = 3;
/// The file written through (only with `--sink`).
const OUT: u64 = 4;
/// Inodes of folders start here, files after all folders.
const FIRST_DIR: u64 = 16;
static ZEROS: [u8; 1 << 20] = [0; 1 << 20];

struct NullFs {
    big: u64,
    dirs: u64,
    files: u64,
    file_size: u64,
    /// Where the writes to `out` go (`--sink`).
    sink: Option<File>,
    /// Handles that write get `FOPEN_DIRECT_IO` (as in an mvault mount).
    direct_writes: bool,
}

impl NullFs {
    fn first_file(&self) -> u64 {
        FIRST_DIR + self.dirs
    }

    fn kind(&self, ino: u64) -> Option<(FileType, u64)> {
        match ino {
            ROOT | TREE => Some((FileType::Directory, 0)),
            BIG => Some((FileType::RegularFile, self.big)),
            OUT => Some((FileType::RegularFile, self.sink_len()?)),
            i if (FIRST_DIR..self.first_file()).contains(&i) => Some((FileType::Directory, 0)),
            i if (self.first_file()..self.first_file() + self.dirs * self.files).contains(&i) => {
                Some((FileType::RegularFile, self.file_size))
            }
            _ => None,
        }
    }

    fn attr(&self, ino: u64) -> Option<FileAttr> {
        let (kind, size) = self.kind(ino)?;
        let now = SystemTime::UNIX_EPOCH;
        Some(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: now,
            mtime: now,
            ctime: now,
            crtime: now,
            kind,
            perm: if kind == FileType::Directory {
                0o755
            } else {
                0o644
            },
            nlink: 1,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    /// The length of what was written to `out` (None: no `--sink`).
    fn sink_len(&self) -> Option<u64> {
        self.sink
            .as_ref()
            .map(|f| f.metadata().map_or(0, |m| m.len()))
    }

    fn child(&self, parent: u64, name: &str) -> Option<u64> {
        match (parent, name) {
            (ROOT, "big") => Some(BIG),
            (ROOT, "out") if self.sink.is_some() => Some(OUT),
            (ROOT, "tree") => Some(TREE),
            (TREE, d) => {
                let d: u64 = d.strip_prefix('d')?.parse().ok()?;
                (d < self.dirs).then_some(FIRST_DIR + d)
            }
            (dir, f) if (FIRST_DIR..self.first_file()).contains(&dir) => {
                let f: u64 = f.strip_prefix('f')?.parse().ok()?;
                (f < self.files).then_some(self.first_file() + (dir - FIRST_DIR) * self.files + f)
            }
            _ => None,
        }
    }

    fn entries(&self, dir: u64) -> Vec<(u64, FileType, String)> {
        match dir {
            ROOT => {
                let mut entries = vec![
                    (BIG, FileType::RegularFile, "big".into()),
                    (TREE, FileType::Directory, "tree".into()),
                ];
                if self.sink.is_some() {
                    entries.push((OUT, FileType::RegularFile, "out".into()));
                }
                entries
            }
            TREE => (0..self.dirs)
                .map(|d| (FIRST_DIR + d, FileType::Directory, format!("d{d:03}")))
                .collect(),
            d => (0..self.files)
                .map(|f| {
                    let ino = self.first_file() + (d - FIRST_DIR) * self.files + f;
                    (ino, FileType::RegularFile, format!("f{f:05}"))
                })
                .collect(),
        }
    }
}

impl Filesystem for NullFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_readahead(1 << 20);
        let _ = config.set_max_write(1 << 20);
        let _ = config.add_capabilities(InitFlags::FUSE_PARALLEL_DIROPS);
        self.direct_writes = self.sink.is_some()
            && config
                .add_capabilities(InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP)
                .is_ok();
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match name
            .to_str()
            .and_then(|n| self.child(u64::from(parent), n))
            .and_then(|ino| self.attr(ino))
        {
            Some(attr) => reply.entry(&TTL, &attr, Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.attr(u64::from(ino)) {
            Some(attr) => reply.attr(&TTL, &attr),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if u64::from(ino) != OUT {
            return reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE);
        }
        if flags.acc_mode() != OpenAccMode::O_RDONLY && self.direct_writes {
            reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO);
        } else {
            reply.opened(FileHandle(0), FopenFlags::empty());
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let Some(sink) = self.sink.as_ref().filter(|_| u64::from(ino) == OUT) else {
            return reply.error(Errno::EBADF);
        };
        match sink.write_all_at(data, offset) {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(e.raw_os_error().map_or(Errno::EIO, Errno::from_i32)),
        }
    }

    /// Only the length of `out` changes (the truncation of `O_TRUNC`).
    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        if let (Some(sink), Some(size), OUT) = (&self.sink, size, u64::from(ino)) {
            // A character device (/dev/null) has no length to set.
            let _ = sink.set_len(size);
        }
        match self.attr(u64::from(ino)) {
            Some(attr) => reply.attr(&TTL, &attr),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let len = self.kind(u64::from(ino)).map_or(0, |(_, len)| len);
        let n = len.saturating_sub(offset).min(size as u64) as usize;
        reply.data(&ZEROS[..n.min(ZEROS.len())]);
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        for (i, (ino, kind, name)) in self
            .entries(u64::from(ino))
            .into_iter()
            .enumerate()
            .skip(offset as usize)
        {
            if reply.add(INodeNo(ino), i as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut mountpoint = None;
    let mut fs = NullFs {
        big: 2048 << 20,
        dirs: 100,
        files: 1000,
        file_size: 16 << 10,
        sink: None,
        direct_writes: false,
    };
    while let Some(arg) = args.next() {
        let mut value = |what: &str| -> u64 {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{what} needs a number"))
        };
        match arg.as_str() {
            "--big-mib" => fs.big = value("--big-mib") << 20,
            "--dirs" => fs.dirs = value("--dirs"),
            "--files" => fs.files = value("--files"),
            "--file-kib" => fs.file_size = value("--file-kib") << 10,
            "--sink" => {
                let path = args.next().expect("--sink needs a file");
                let file = File::options()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&path)
                    .unwrap_or_else(|e| panic!("--sink {path}: {e}"));
                fs.sink = Some(file);
            }
            m => mountpoint = Some(m.to_string()),
        }
    }
    let mountpoint = mountpoint
        .expect("usage: null_fs [--big-mib N] [--dirs N] [--files N] [--file-kib N] [--sink FILE] MOUNTPOINT");
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::FSName("nullfs".into()),
        if fs.sink.is_some() {
            fuser::MountOption::RW
        } else {
            fuser::MountOption::RO
        },
    ];
    // As an mvault mount: twice the cores, 4..16.
    config.n_threads = Some(
        std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .saturating_mul(2)
            .clamp(4, 16),
    );
    config.clone_fd = true;
    fuser::mount(fs, mountpoint, &config)
}
