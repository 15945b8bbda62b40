//! # fuse-mount
//!
//! A read-only FUSE filesystem that serves the plaintext of mvault sealed
//! files only to permitted processes. Access is decided per caller at
//! `lookup`, `getattr`, `opendir`, `access` and `open` by a [`Policy`]
//! (uids, gids, executables, process trees, cgroups); reads go through the
//! kernel page cache and a memory-bounded cache of authenticated chunks.
//! A tampered chunk makes the read of that chunk fail with `EIO`; wrong
//! bytes are never returned.

#![forbid(unsafe_code)]

pub mod audit;
mod cache;
mod chunks;
mod decisions;
mod fs;
mod gate;
mod harden;
mod integrity;
mod job;
mod policy;
mod prefetch;
mod procinfo;
mod tree;
mod witness;
mod write;

use std::io;
use std::path::Path;

pub use audit::AuditLog;
pub use fs::{FsOptions, VaultFs};
pub use fuser::BackgroundSession;
pub use harden::{disable_core_dumps, harden_process};
pub use integrity::{IntegrityFailure, integrity_failures};
pub use job::JobTree;
pub use policy::{Decision, Policy};
pub use procinfo::ProcessId;
pub use tree::Tree;
pub use write::{OutputFs, OutputOptions, OutputStatus};

/// How to mount.
#[derive(Clone, Debug)]
pub struct MountOptions {
    /// FUSE worker threads. Each request is served start to finish on the
    /// thread that received it, and a reading process waits for its answer,
    /// so the default is twice the cores (4..16): with as many threads as
    /// cores, several readers of small files (a DataLoader's workers) queued
    /// behind a thread that had just answered and been descheduled in favour
    /// of the reader it woke (`benches/small_files.sh`: 4 processes reading
    /// 20,000 files cold went from 7-9k to 11-14k files/s on 2 cores).
    pub threads: usize,
    /// Ask fusermount to unmount if this process dies.
    pub auto_unmount: bool,
    /// Filesystem tunables.
    pub fs: FsOptions,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            threads: std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .saturating_mul(2)
                .clamp(4, 16),
            auto_unmount: true,
            fs: FsOptions::default(),
        }
    }
}

/// Whether /etc/fuse.conf lets unprivileged users mount with allow_other.
pub fn fuse_conf_allows_other() -> bool {
    std::fs::read_to_string("/etc/fuse.conf").is_ok_and(|text| {
        text.lines()
            .map(|l| l.split('#').next().unwrap_or("").trim())
            .any(|l| l == "user_allow_other")
    })
}

/// Mounts `tree` at `mountpoint` in background threads. The filesystem is
/// unmounted when the returned session is dropped or
/// [`BackgroundSession::umount_and_join`] is called.
pub fn spawn_mount(
    tree: Tree,
    mountpoint: &Path,
    policy: Policy,
    audit: Option<AuditLog>,
    options: &MountOptions,
) -> io::Result<BackgroundSession> {
    let (config, owner) = fuse_config(&policy, options, true)?;
    let fs = VaultFs::new(tree, policy, audit, owner, options.fs.clone());
    let session = fuser::spawn_mount(fs, mountpoint, &config)?;
    raise_readahead(mountpoint, options.fs.max_read);
    Ok(session)
}

/// Mounts the writable folder of `out` at `mountpoint` (see
/// [`OutputFs`]): files written there are sealed into the vault. The last
/// commit happens when the session ends; [`OutputStatus`] tells how it went.
pub fn spawn_output_mount(
    out: vault_core::vault::OutputVault,
    mountpoint: &Path,
    policy: Policy,
    audit: Option<AuditLog>,
    options: &MountOptions,
    output: OutputOptions,
) -> io::Result<(BackgroundSession, OutputStatus)> {
    let (config, owner) = fuse_config(&policy, options, false)?;
    let (fs, status) = OutputFs::new(out, policy, audit, owner, output);
    let session = fuser::spawn_mount(fs, mountpoint, &config)?;
    Ok((session, status))
}

/// The FUSE configuration of a mount owned by this process's user, and
/// that owner (uid, gid).
fn fuse_config(
    policy: &Policy,
    options: &MountOptions,
    read_only: bool,
) -> io::Result<(fuser::Config, (u32, u32))> {
    let owner = (
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    );
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::FSName("mvault".into()),
        fuser::MountOption::Subtype("mvault".into()),
        if read_only {
            fuser::MountOption::RO
        } else {
            fuser::MountOption::RW
        },
        fuser::MountOption::NoDev,
        fuser::MountOption::NoSuid,
    ];
    // The kernel passes other users' requests only with allow_other, and
    // fusermount's auto_unmount needs it too. The policy stays the gate:
    // with allow_other on, its default still admits only the mounting user.
    let allow_other_ok = owner.0 == 0 || fuse_conf_allows_other();
    if policy.admits_other_users() && !allow_other_ok {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "admitting other users needs `user_allow_other` in /etc/fuse.conf",
        ));
    }
    config.acl = if allow_other_ok && (options.auto_unmount || policy.admits_other_users()) {
        fuser::SessionACL::All
    } else {
        fuser::SessionACL::Owner
    };
    if options.auto_unmount && config.acl == fuser::SessionACL::All {
        config.mount_options.push(fuser::MountOption::AutoUnmount);
    }
    config.n_threads = Some(options.threads.max(1));
    config.clone_fd = true;
    Ok((config, owner))
}

/// Raises the kernel read-ahead of a fresh mount to `bytes`, so sequential
/// readers send `bytes`-sized requests instead of the default 128 KiB.
///
/// FUSE INIT can only lower read-ahead below the kernel's default, but the
/// mount's backing device takes a larger value through sysfs afterwards
/// (root only; elsewhere this quietly does nothing).
fn raise_readahead(mountpoint: &Path, bytes: u32) {
    // Stat waits for INIT to be answered, which would otherwise lower the
    // value again; the root directory's attributes are open to everyone.
    let Ok(meta) = std::fs::metadata(mountpoint) else {
        return;
    };
    let dev = std::os::unix::fs::MetadataExt::dev(&meta);
    let knob = format!(
        "/sys/class/bdi/{}:{}/read_ahead_kb",
        rustix::fs::major(dev),
        rustix::fs::minor(dev)
    );
    let current = std::fs::read_to_string(&knob)
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok());
    if current.is_some_and(|kb| kb < bytes / 1024) {
        let _ = std::fs::write(&knob, (bytes / 1024).to_string());
    }
}

/// Aborts the FUSE connection of the mount whose device number is `dev`,
/// through the fusectl filesystem (`/sys/fs/fuse/connections`, root only):
/// every pending and later request on it fails (ENOTCONN), the session ends.
/// Where fusectl is missing, closing the session's `/dev/fuse` descriptors
/// (ending the process) has the same effect.
pub fn abort_connection(dev: u64) -> io::Result<()> {
    let knob = format!("/sys/fs/fuse/connections/{}/abort", rustix::fs::minor(dev));
    std::fs::write(knob, b"1")
}
