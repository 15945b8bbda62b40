//! `mvault run`: mount, run one command with access to the mounts, unmount.
//!
//! `run` is a child subreaper: processes of the command's tree whose parent
//! exits are re-parented to it, keep access while the command runs (see
//! [`fuse_mount::JobTree`]) and are reaped here. Once the command exits,
//! nobody is admitted; the mounts are detached, files still open get the
//! `--grace` period, then the FUSE connections are aborted and `run` exits.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use fuse_mount::{JobTree, ProcessId, harden_process};

use super::mount::{build_tree, mount_options};
use super::mountpoint::{Pinned, Rules};
use super::output;
use super::served::{Serve, Served, finish};
use super::stop::Stop;
use crate::cli::RunArgs;
use crate::exit::{Exit, fail};

/// How often `run` looks at its command and reaps adopted processes.
const POLL: Duration = Duration::from_millis(20);

/// One `--mount SRC:MOUNTPOINT`.
struct MountSpec {
    source: PathBuf,
    mountpoint: PathBuf,
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
    })
}

pub fn run(args: RunArgs, quiet: bool) -> Result<i32> {
    let specs = args
        .mounts
        .iter()
        .map(|m| parse_mount(m))
        .collect::<Result<Vec<_>>>()?;
    let outputs = args
        .outputs
        .iter()
        .map(|m| parse_mount(m))
        .collect::<Result<Vec<_>>>()?;
    if specs.is_empty() && outputs.is_empty() {
        return Err(fail(
            Exit::Usage,
            "give at least one --mount SOURCE:MOUNTPOINT or --output VAULT:MOUNTPOINT",
        ));
    }
    let me = ProcessId::of(std::process::id() as i32)
        .ok_or_else(|| fail(Exit::Internal, "cannot read this process in /proc"))?;
    let job = Arc::new(JobTree::new(me));
    let mut policy = args.policy.policy()?;
    policy.job = Some(Arc::clone(&job));
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
        .context("cannot become a child subreaper")?;

    let mut trees = Vec::new();
    for spec in &specs {
        trees.push(build_tree(&spec.source, &args.serve.identities, quiet)?);
    }
    let mut vaults = Vec::new();
    for spec in &outputs {
        let sign = args.sign.clone();
        vaults.push(output::open(&spec.source, &args.serve.identities, sign)?);
    }
    let rules = Rules {
        create: true,
        nonempty: args.serve.nonempty,
    };
    let mut pins = Vec::new();
    for spec in specs.iter().chain(&outputs) {
        match Pinned::prepare(&spec.mountpoint, rules) {
            Ok(pin) => pins.push(pin),
            Err(e) => {
                remove_created(&created_of(&pins));
                return Err(e);
            }
        }
    }
    let created = created_of(&pins);
    for warning in harden_process().into_iter().chain(args.policy.warnings()) {
        if !quiet {
            eprintln!("mvault: warning: {warning}");
        }
    }
    let stop = match Stop::install(args.serve.grace) {
        Ok(stop) => stop,
        Err(e) => {
            remove_created(&created);
            return Err(e);
        }
    };
    for path in &created {
        stop.add_created(path.clone());
    }
    let cache = args
        .serve
        .cache_bytes(specs.iter().map(|s| s.source.as_path()));
    let options = mount_options(cache, args.serve.fuse_threads);
    let mut mounts = Vec::new();
    let mut statuses = Vec::new();
    let outcome = (|| -> Result<i32> {
        // The first pins are the --mount points, the rest the --output ones.
        let mut pins = pins;
        let output_pins = pins.split_off(specs.len());
        for ((pin, tree), spec) in pins.into_iter().zip(trees).zip(&specs) {
            let serve = Serve {
                tree,
                policy: policy.clone(),
                audit: super::remote::audit_naming(&spec.source, args.serve.open_audit_log()?),
                options: &options,
            };
            mounts.push(Served::mount(pin, serve, &stop)?);
            // A signal while mounting (Ctrl-C included, since the command
            // that would get it is not running yet) means: do not start it.
            if let Some(signal) = stop.requested() {
                return Ok(128 + signal);
            }
        }
        for ((pin, vault), spec) in output_pins.into_iter().zip(vaults).zip(&outputs) {
            let out = output::Output {
                vault,
                policy: policy.clone(),
                audit: super::remote::audit_naming(&spec.source, args.serve.open_audit_log()?),
                options: &options,
                spill_dir: args.spill_dir.clone(),
            };
            let (served, status) = output::mount(pin, out, &stop)?;
            mounts.push(served);
            statuses.push(status);
            if let Some(signal) = stop.requested() {
                return Ok(128 + signal);
            }
        }
        run_command(&args.command, &job, &stop)
    })();
    job.end();
    stop.finishing();
    let finished = finish(mounts, &stop);
    reap_adopted(None);
    remove_created(&created);
    let committed = output::finish(&statuses, quiet);
    let code = outcome?;
    finished.context("a FUSE session ended with an error")?;
    committed?;
    Ok(code)
}

/// Starts the command, records its tree, and waits for it, reaping the
/// processes it leaves behind meanwhile. Returns its exit code.
fn run_command(command: &[String], job: &JobTree, stop: &Stop) -> Result<i32> {
    // Everything this process started so far is a helper (fusermount3).
    job.set_helpers(
        own_children()
            .into_iter()
            .filter_map(ProcessId::of)
            .collect(),
    );
    // The command reads plaintext through the mount; it never needs the
    // passphrase that unlocked it.
    let mut child = Command::new(&command[0])
        .args(&command[1..])
        .env_remove("MVAULT_PASSPHRASE")
        .spawn()
        .with_context(|| format!("cannot start {}", command[0]))?;
    let pid = child.id() as i32;
    // The child is not yet reaped, so its pid cannot be reused here.
    let id =
        ProcessId::of(pid).ok_or_else(|| fail(Exit::Internal, "the command vanished at start"))?;
    job.set_command(id);
    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
        stop.command_started(pid);
    }
    let status = loop {
        if let Some(status) = stop.try_wait(&mut child) {
            break status;
        }
        reap_adopted(Some(pid));
        std::thread::sleep(POLL);
    };
    job.end();
    explain_integrity_failures(&status, &command[0]);
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
}

/// A command that failed after the mounts refused tampered chunks is told
/// why: a `read()` got EIO, but a memory-mapped reader (`torch.load(mmap=
/// True)`, `safetensors`, `np.memmap`) is killed by SIGBUS with no message
/// of its own.
fn explain_integrity_failures(status: &std::process::ExitStatus, command: &str) {
    let failures = fuse_mount::integrity_failures();
    if status.success() || failures.is_empty() {
        return;
    }
    let sigbus = std::os::unix::process::ExitStatusExt::signal(status)
        == Some(rustix::process::Signal::BUS.as_raw());
    let first = &failures[0];
    if sigbus {
        eprintln!(
            "mvault: {command} was killed by SIGBUS after an integrity failure on {} ({}); a memory-mapped read cannot return EIO, so the kernel stopped the reader; no wrong byte was served",
            first.path, first.message
        );
    } else {
        eprintln!(
            "mvault: {command} failed after an integrity failure on {} ({}); reads of that chunk got EIO; no wrong byte was served",
            first.path, first.message
        );
    }
    for other in &failures[1..] {
        eprintln!("mvault: also: {} ({})", other.path, other.message);
    }
}

/// The pids of this process's children (of all its threads).
fn own_children() -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|text| {
            text.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
}

/// Reaps children that have exited, except `command` (reaped by its own
/// wait): processes of the command's tree re-parented to this subreaper.
fn reap_adopted(command: Option<i32>) {
    use rustix::process::{Pid, WaitOptions, waitpid};
    for pid in own_children() {
        if Some(pid) != command
            && let Some(pid) = Pid::from_raw(pid)
        {
            let _ = waitpid(Some(pid), WaitOptions::NOHANG);
        }
    }
}

fn created_of(pins: &[Pinned]) -> Vec<PathBuf> {
    pins.iter()
        .filter(|p| p.created())
        .map(|p| p.path.clone())
        .collect()
}

/// Removes the (empty) mount points this run created.
fn remove_created(created: &[PathBuf]) {
    for path in created {
        let _ = std::fs::remove_dir(path);
    }
}
