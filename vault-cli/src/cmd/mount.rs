//! `mvault mount` and `mvault umount`.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use fuse_mount::audit::{AuditOptions, AuditTarget, OpenError};
use fuse_mount::{AuditLog, MountOptions, Policy, ProcessId, Tree, harden_process};

use super::mountinfo;
use super::mountpoint::{Pinned, Rules};
use super::output;
use super::served::{Serve, Served, finish};
use super::stop::Stop;
use crate::cli::{MountArgs, PolicyArgs, ServeArgs, UmountArgs};
use crate::exit::{Exit, fail};
use crate::key_args::{load_identities, maybe_add_passphrase};

impl ServeArgs {
    /// `--cache-size`, else the default for mounts of `sources`: smaller
    /// when one is at a URL ([`crate::cli::DEFAULT_REMOTE_CACHE_SIZE`]).
    pub fn cache_bytes<'a>(&self, mut sources: impl Iterator<Item = &'a Path>) -> u64 {
        self.cache_size.unwrap_or_else(|| {
            if sources.any(super::remote::is_url) {
                crate::cli::DEFAULT_REMOTE_CACHE_SIZE
            } else {
                crate::cli::DEFAULT_CACHE_SIZE
            }
        })
    }

    /// Opens (appends to) the `--audit-log` file, or connects to journald
    /// or syslog (`journal`, `syslog`), if one was given. An unsafe path (a
    /// symlink, another user's file) is refused (exit 7); a system log that
    /// is not listening is an I/O error (exit 6).
    pub fn open_audit_log(&self) -> Result<Option<AuditLog>> {
        let Some(path) = self.audit_log.as_deref() else {
            return Ok(None);
        };
        let options = AuditOptions {
            fail_open: self.audit_fail_open,
        };
        match AuditLog::open_target(&AuditTarget::from_arg(path), options) {
            Ok(log) => Ok(Some(log)),
            Err(e @ OpenError::Refused(_)) => {
                Err(fail(Exit::Refused, format!("refusing the audit log: {e}")))
            }
            Err(e) => Err(anyhow::Error::new(e).context("cannot open the audit log")),
        }
    }
}

impl PolicyArgs {
    /// The policy these flags describe, for a mount owned by the caller.
    pub fn policy(&self) -> Result<Policy> {
        let mut pid_trees = Vec::new();
        for pid in &self.allow_pid_tree {
            let id = ProcessId::of(*pid).ok_or_else(|| {
                fail(
                    Exit::Usage,
                    format!("--allow-pid-tree {pid}: no such process"),
                )
            })?;
            pid_trees.push(id);
        }
        Policy {
            uids: self.allow_uid.clone(),
            gids: self.allow_gid.clone(),
            exes: self.allow_exe.clone(),
            pid_trees,
            cgroups: self.allow_cgroup.clone(),
            owner_uid: rustix::process::geteuid().as_raw(),
            job: None,
        }
        .canonicalize()
        .context("--allow-exe names a program that does not exist")
    }
}

impl PolicyArgs {
    /// What the user should know about these rules before mounting: with
    /// `--allow-exe`, a loader variable in mvault's own environment is
    /// inherited by the programs it starts, and those are refused.
    pub fn warnings(&self) -> Vec<String> {
        if self.allow_exe.is_empty() {
            return Vec::new();
        }
        ["LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT"]
            .into_iter()
            .filter(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()))
            .map(|name| {
                format!(
                    "{name} is set: --allow-exe refuses processes that have it in their \
                     environment (unset it for the programs that read the mount)"
                )
            })
            .collect()
    }
}

/// Unlocks every sealed file under `source` and reports those left out.
pub fn build_tree(source: &Path, identity_files: &[PathBuf], quiet: bool) -> Result<Tree> {
    let (mut identities, files) = load_identities(identity_files)?;
    if let vault_core::Input::Vault(vault) = vault_core::Input::open(source)
        .with_context(|| format!("cannot open {}", source.display()))?
    {
        maybe_add_passphrase(&mut identities, &vault.keyring_header()?, !files.is_empty())?;
    } else if super::remote::is_url(source) {
        let file = super::remote::open(source)?;
        let (header, _) = vault_core::read_header(file.as_ref())
            .with_context(|| format!("cannot read {}", source.display()))?;
        maybe_add_passphrase(&mut identities, &header, !files.is_empty())?;
    } else if let Some(first) = first_sealed_file(source)? {
        let file = std::fs::File::open(&first)?;
        let (header, _) = vault_core::read_header(&file)
            .with_context(|| format!("cannot read {}", first.display()))?;
        maybe_add_passphrase(&mut identities, &header, !files.is_empty())?;
    }
    if identities.is_empty() {
        return Err(fail(
            Exit::Usage,
            "no identity: pass -i IDENTITY or set MVAULT_IDENTITY",
        ));
    }
    let (tree, skipped) = Tree::build(source, &identities)
        .with_context(|| format!("cannot serve {}", source.display()))?;
    if !quiet {
        for s in &skipped {
            eprintln!("mvault: skipping {}: {}", s.path.display(), s.error);
        }
    }
    Ok(tree)
}

/// The first sealed file of a source, to see which secrets it needs.
fn first_sealed_file(source: &Path) -> Result<Option<PathBuf>> {
    let meta =
        std::fs::metadata(source).with_context(|| format!("cannot open {}", source.display()))?;
    if !meta.is_dir() {
        return Ok(Some(source.to_path_buf()));
    }
    let mut stack = vec![source.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let folder = || format!("cannot read the folder {}", dir.display());
        for entry in std::fs::read_dir(&dir).with_context(folder)? {
            let entry = entry.with_context(folder)?;
            let kind = entry.file_type().with_context(folder)?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() && entry.file_name().to_string_lossy().ends_with(".mvlt") {
                return Ok(Some(entry.path()));
            }
        }
    }
    Ok(None)
}

/// Mount options from the command line.
pub fn mount_options(cache_size: u64, fuse_threads: Option<usize>) -> MountOptions {
    let mut options = MountOptions::default();
    options.fs.cache_bytes = cache_size as usize;
    if let Some(n) = fuse_threads {
        options.threads = n.max(1);
    }
    options
}

pub fn run(args: MountArgs, quiet: bool) -> Result<Exit> {
    if !args.foreground {
        return daemonize(&args.mountpoint, quiet);
    }
    let rules = Rules {
        create: false,
        nonempty: args.serve.nonempty,
    };
    let pin = Pinned::prepare(&args.mountpoint, rules)?;
    let policy = args.policy.policy()?;
    let writable = args.output.writable;
    let (tree, vault) = if writable {
        let o = &args.output;
        let vault = output::open(&args.source, &args.serve.identities, o.sign.clone())?;
        (None, Some(vault))
    } else {
        (
            Some(build_tree(&args.source, &args.serve.identities, quiet)?),
            None,
        )
    };
    let files = tree.as_ref().map_or(1, Tree::len);
    let bytes = tree.as_ref().map_or(0, Tree::total_bytes);
    let audit = super::remote::audit_naming(&args.source, args.serve.open_audit_log()?);
    for warning in harden_process().into_iter().chain(args.policy.warnings()) {
        if !quiet {
            eprintln!("mvault: warning: {warning}");
        }
    }
    let stop = Stop::install(args.serve.grace)?;
    let cache = args
        .serve
        .cache_bytes(std::iter::once(args.source.as_path()));
    let options = mount_options(cache, args.serve.fuse_threads);
    let (served, status) = match (tree, vault) {
        (Some(tree), _) => {
            let serve = Serve {
                tree,
                policy,
                audit,
                options: &options,
            };
            (Served::mount(pin, serve, &stop)?, None)
        }
        (None, Some(vault)) => {
            let out = output::Output {
                vault,
                policy,
                audit,
                options: &options,
                spill_dir: args.output.spill_dir.clone(),
            };
            let (served, status) = output::mount(pin, out, &stop)?;
            (served, Some(status))
        }
        (None, None) => unreachable!("one of the two was opened"),
    };
    if let Some(fd) = args.ready_fd {
        // Tell the waiting parent we are mounted, then leave its session.
        let _ = rustix::process::setsid();
        if let Ok(mut pipe) = std::fs::OpenOptions::new()
            .write(true)
            .open(format!("/proc/self/fd/{fd}"))
        {
            let _ = writeln!(pipe, "ready {} {}", files.saturating_sub(1), bytes);
        }
        detach_stdio();
    } else if !quiet {
        eprintln!(
            "mvault: serving {} at {} ({} B); Ctrl-C or `mvault umount {}` unmounts",
            args.source.display(),
            served.path().display(),
            bytes,
            served.path().display()
        );
    }
    // Until unmounted (`mvault umount`, lazily or not) or asked to stop by
    // a signal; then files still open get the grace period.
    for tick in 0u64.. {
        if served.finished() || stop.requested().is_some() || (tick % 10 == 9 && !served.attached())
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let finished = finish(vec![served], &stop).context("the FUSE session ended with an error");
    output::finish(status.as_slice(), quiet)?;
    finished?;
    Ok(Exit::Ok)
}

/// Runs this same command again with `--foreground`, detached, and returns
/// once it has mounted (or failed).
fn daemonize(mountpoint: &Path, quiet: bool) -> Result<Exit> {
    // The write end becomes the child's standard output, which it points
    // at /dev/null once it has reported; no other copy of either end
    // outlives this function (close-on-exec keeps the read end here).
    let (reader, writer) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .context("cannot create a pipe")?;
    let exe = std::env::current_exe().context("cannot find the mvault executable")?;
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    args.push("--foreground".into());
    args.push("--ready-fd".into());
    args.push("1".into());
    let mut child = Command::new(exe)
        .args(&args)
        .stdout(Stdio::from(writer))
        .spawn()
        .context("cannot start the mount process")?;
    // One line: a helper the mount process started (fusermount3 with
    // auto_unmount) may hold the write end long after it.
    let mut message = String::new();
    let _ = std::io::BufReader::new(std::fs::File::from(reader)).read_line(&mut message);
    if message.starts_with("ready") {
        if !quiet {
            eprintln!(
                "mvault: mounted at {} (pid {}); unmount with `mvault umount {}`",
                mountpoint.display(),
                child.id(),
                shell_quoted(mountpoint)
            );
        }
        return Ok(Exit::Ok);
    }
    let status = child.wait()?;
    Ok(match status.code() {
        Some(0) | None => Exit::Internal,
        Some(code) => exit_from_code(code),
    })
}

fn exit_from_code(code: i32) -> Exit {
    match code {
        2 => Exit::Usage,
        3 => Exit::Key,
        4 => Exit::Integrity,
        5 => Exit::Format,
        6 => Exit::Io,
        7 => Exit::Refused,
        9 => Exit::BadSignature,
        10 => Exit::NotMounted,
        _ => Exit::Internal,
    }
}

/// Points stdin, stdout (the ready pipe of a background mount) and stderr
/// at /dev/null once a background mount is ready.
fn detach_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        let _ = rustix::stdio::dup2_stdin(&null);
        let _ = rustix::stdio::dup2_stdout(&null);
        let _ = rustix::stdio::dup2_stderr(&null);
    }
}

/// `path` as a shell word (single-quoted when it needs to be).
fn shell_quoted(path: &Path) -> String {
    let text = path.display().to_string();
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+,:@%".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

pub fn mount_error(err: std::io::Error, mountpoint: &Path) -> anyhow::Error {
    let hint = if err.kind() == std::io::ErrorKind::NotFound {
        " (is fuse3 installed? apt-get install fuse3)"
    } else if err.kind() == std::io::ErrorKind::PermissionDenied {
        " (no access to /dev/fuse, or allow_other needs `user_allow_other` in /etc/fuse.conf)"
    } else {
        ""
    };
    anyhow::Error::new(err).context(format!("cannot mount at {}{hint}", mountpoint.display()))
}

pub fn umount(args: UmountArgs, quiet: bool) -> Result<Exit> {
    let path = mounted_path(&args.mountpoint)?;
    unmount(&path, args.lazy)?;
    if !quiet {
        eprintln!("mvault: unmounted {}", path.display());
    }
    Ok(Exit::Ok)
}

/// The canonical path of the mvault mount at `mountpoint`, never following
/// a symbolic link there; refuses a path where no mvault mount is.
fn mounted_path(mountpoint: &Path) -> Result<PathBuf> {
    if rustix::fs::lstat(mountpoint)
        .is_ok_and(|st| rustix::fs::FileType::from_raw_mode(st.st_mode).is_symlink())
    {
        return Err(fail(
            Exit::Refused,
            format!(
                "{} is a symbolic link; mvault umount does not follow links: give the mount point itself",
                mountpoint.display()
            ),
        ));
    }
    // The mount itself may be dead (ENOTCONN): resolve only its parent.
    let name = mountpoint.file_name().ok_or_else(|| {
        fail(
            Exit::Usage,
            format!("{} is not a mount point of mvault", mountpoint.display()),
        )
    })?;
    let parent = match mountpoint.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let path = std::fs::canonicalize(parent)
        .map(|p| p.join(name))
        .map_err(|_| not_mounted(mountpoint))?;
    match mountinfo::mounted_at(&path) {
        None => Err(not_mounted(mountpoint)),
        Some(m) if !m.is_mvault() => Err(fail(
            Exit::Refused,
            format!(
                "{} is a {} mount, not an mvault mount; mvault umount leaves it alone",
                path.display(),
                m.fs_type
            ),
        )),
        Some(_) => Ok(path),
    }
}

fn not_mounted(mountpoint: &Path) -> anyhow::Error {
    fail(
        Exit::NotMounted,
        format!(
            "{} is not mounted (nothing to unmount)",
            mountpoint.display()
        ),
    )
}

/// Unmounts a FUSE mount with fusermount3 (works unprivileged), falling back
/// to umount(2) when running as root.
pub fn unmount(mountpoint: &Path, lazy: bool) -> Result<()> {
    let mut flags = vec!["-u"];
    if lazy {
        flags.push("-z");
    }
    for tool in ["fusermount3", "fusermount"] {
        match Command::new(tool)
            .args(&flags)
            .arg(mountpoint)
            .stderr(Stdio::piped())
            .output()
        {
            Ok(out) if out.status.success() => return Ok(()),
            Ok(out) => {
                let text = String::from_utf8_lossy(&out.stderr);
                if rustix::process::geteuid().is_root() {
                    break;
                }
                return Err(fail(
                    Exit::Io,
                    format!("cannot unmount {}: {}", mountpoint.display(), text.trim()),
                ));
            }
            Err(_) => continue,
        }
    }
    let flags = if lazy {
        rustix::mount::UnmountFlags::DETACH | rustix::mount::UnmountFlags::NOFOLLOW
    } else {
        rustix::mount::UnmountFlags::NOFOLLOW
    };
    rustix::mount::unmount(mountpoint, flags).map_err(|e| {
        fail(
            Exit::Io,
            format!(
                "cannot unmount {}: {e} (busy? try --lazy)",
                mountpoint.display()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use clap::Parser;

    use crate::cli::{DEFAULT_CACHE_SIZE, DEFAULT_REMOTE_CACHE_SIZE, ServeArgs};

    /// `ServeArgs` as `mount` and `run` parse them.
    #[derive(clap::Parser)]
    struct Flags {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn serve(flags: &[&str]) -> ServeArgs {
        Flags::parse_from(std::iter::once("mvault").chain(flags.iter().copied())).serve
    }

    fn paths<'a>(sources: &'a [&'a str]) -> impl Iterator<Item = &'a Path> {
        sources.iter().map(Path::new)
    }

    #[test]
    fn a_mount_of_a_vault_at_a_url_defaults_to_the_smaller_chunk_cache() {
        assert_eq!(DEFAULT_REMOTE_CACHE_SIZE, 64 << 20);
        assert_eq!(DEFAULT_CACHE_SIZE, 256 << 20);
        let defaults = serve(&[]);
        // Local sources keep 256M.
        assert_eq!(
            defaults.cache_bytes(paths(&["/data/ds.vault"])),
            DEFAULT_CACHE_SIZE
        );
        assert_eq!(
            defaults.cache_bytes(paths(&["ds.vault", "/data/f.mvlt"])),
            DEFAULT_CACHE_SIZE
        );
        // A vault at a URL (any of run's --mount sources) gets 64M.
        for url in [
            "s3://bucket/prefix/ds.vault",
            "gs://b/ds.vault",
            "file:///tmp/ds.vault",
        ] {
            assert_eq!(
                defaults.cache_bytes(paths(&[url])),
                DEFAULT_REMOTE_CACHE_SIZE,
                "{url}"
            );
        }
        assert_eq!(
            defaults.cache_bytes(paths(&["/data/local.vault", "s3://bucket/ds.vault"])),
            DEFAULT_REMOTE_CACHE_SIZE
        );
        // --cache-size wins either way.
        let given = serve(&["--cache-size", "128M"]);
        assert_eq!(
            given.cache_bytes(paths(&["s3://bucket/ds.vault"])),
            128 << 20
        );
        assert_eq!(given.cache_bytes(paths(&["/data/ds.vault"])), 128 << 20);
    }
}
