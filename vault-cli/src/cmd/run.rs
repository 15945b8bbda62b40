//! `mvault run`: mount, run one command with access to the mounts, unmount.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, OnceLock};

use anyhow::{Context, Result};
use fuse_mount::{ProcessId, harden_process};
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};

use super::mount::{build_tree, check_mountpoint, mount_error, mount_options};
use crate::cli::RunArgs;
use crate::exit::{Exit, fail};

/// One `--mount SRC:MOUNTPOINT`.
struct MountSpec {
    source: PathBuf,
    mountpoint: PathBuf,
    created: bool,
}

fn parse_mount(text: &str) -> Result<MountSpec> {
    let (source, mountpoint) = text
        .rsplit_once(':')
        .filter(|(s, m)| !s.is_empty() && !m.is_empty())
        .ok_or_else(|| {
            fail(
                Exit::Usage,
                format!("--mount {text:?}: expected SOURCE:MOUNTPOINT"),
            )
        })?;
    Ok(MountSpec {
        source: PathBuf::from(source),
        mountpoint: PathBuf::from(mountpoint),
        created: false,
    })
}

pub fn run(args: RunArgs, quiet: bool) -> Result<i32> {
    let mut specs = args
        .mounts
        .iter()
        .map(|m| parse_mount(m))
        .collect::<Result<Vec<_>>>()?;
    if specs.is_empty() {
        return Err(fail(
            Exit::Usage,
            "give at least one --mount SOURCE:MOUNTPOINT",
        ));
    }
    let mut policy = args.policy.policy()?;
    let child_root = Arc::new(OnceLock::<ProcessId>::new());
    policy.pending_tree = Some(Arc::clone(&child_root));
    // The command may reach the mount before its id is recorded below.
    policy.pending_parent = ProcessId::of(std::process::id() as i32);

    let mut trees = Vec::new();
    for spec in &specs {
        trees.push(build_tree(&spec.source, &args.serve.identities, quiet)?);
    }
    if let Err(e) = prepare_mountpoints(&mut specs) {
        remove_created(&specs);
        return Err(e);
    }
    for warning in harden_process().into_iter().chain(args.policy.warnings()) {
        if !quiet {
            eprintln!("mvault: warning: {warning}");
        }
    }

    // The terminal delivers Ctrl-C to the command itself; mvault ignores it
    // and outlives the command so it can unmount. Other signals are passed on.
    let mut signals = match signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT])
    {
        Ok(signals) => signals,
        Err(e) => {
            remove_created(&specs);
            return Err(e.into());
        }
    };
    let options = mount_options(args.serve.cache_size, args.serve.fuse_threads);
    let mut sessions = Vec::new();
    let outcome = (|| -> Result<i32> {
        for (spec, tree) in specs.iter().zip(trees) {
            let audit = args.serve.open_audit_log()?;
            let session =
                fuse_mount::spawn_mount(tree, &spec.mountpoint, policy.clone(), audit, &options)
                    .map_err(|e| mount_error(e, &spec.mountpoint))?;
            sessions.push(session);
        }
        // A signal while mounting (Ctrl-C included, since the command that
        // would get it is not running yet) means: do not start it.
        if let Some(signal) = signals.pending().next() {
            return Ok(128 + signal);
        }
        // The command reads plaintext through the mount; it never needs
        // the passphrase that unlocked it.
        let mut child = Command::new(&args.command[0])
            .args(&args.command[1..])
            .env_remove("MVAULT_PASSPHRASE")
            .spawn()
            .with_context(|| format!("cannot start {}", args.command[0]))?;
        let pid = child.id() as i32;
        // The child is not yet reaped, so its pid cannot be reused here.
        let id = ProcessId::of(pid)
            .ok_or_else(|| fail(Exit::Internal, "the command vanished at start"))?;
        let _ = child_root.set(id);
        let forwarder = signals.handle();
        let forward = std::thread::spawn(move || {
            for signal in signals.forever() {
                if signal != SIGINT
                    && let Some(sig) = rustix::process::Signal::from_named_raw(signal)
                    && let Some(pid) = rustix::process::Pid::from_raw(pid)
                {
                    let _ = rustix::process::kill_process(pid, sig);
                }
            }
        });
        let status = child.wait()?;
        forwarder.close();
        drop(forward);
        Ok(
            match (
                status.code(),
                std::os::unix::process::ExitStatusExt::signal(&status),
            ) {
                (Some(code), _) => code,
                (None, Some(sig)) => 128 + sig,
                _ => Exit::Internal as i32,
            },
        )
    })();
    // Unmount through fusermount (lazily, in case a straggler of the
    // command still holds a file), then wait for each session to end.
    for spec in &specs {
        let _ = super::mount::unmount(&spec.mountpoint, true);
    }
    for session in sessions {
        let _ = session.join();
    }
    remove_created(&specs);
    outcome
}

/// Creates the mount points that do not exist yet (noting which) and
/// checks every one.
fn prepare_mountpoints(specs: &mut [MountSpec]) -> Result<()> {
    for spec in specs {
        if !spec.mountpoint.exists() {
            std::fs::create_dir_all(&spec.mountpoint).with_context(|| {
                format!("cannot create mountpoint {}", spec.mountpoint.display())
            })?;
            spec.created = true;
        }
        check_mountpoint(&spec.mountpoint)?;
    }
    Ok(())
}

/// Removes the (empty) mount points this run created.
fn remove_created(specs: &[MountSpec]) {
    for spec in specs {
        if spec.created {
            let _ = std::fs::remove_dir(&spec.mountpoint);
        }
    }
}
