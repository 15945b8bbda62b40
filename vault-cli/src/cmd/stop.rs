//! Signals for `mount` and `run`, at every stage, and a watchdog that
//! bounds how long mvault may take to stop once asked.
//!
//! A signal thread records SIGINT/SIGTERM/SIGHUP/SIGQUIT. While `run`'s
//! command runs, signals other than SIGINT (which the terminal delivers to
//! the command itself) are passed on to it; if it has not exited within the
//! grace period, or on a second signal, it gets SIGKILL. At any other stage
//! the first signal asks the main thread to stop (unmount, wait the grace
//! period for open files, abort), and a second one (or one while `run` is
//! already finishing) cuts the grace short.
//! Whatever the main thread is blocked in, once a deadline after the first
//! signal passes, the signal thread aborts and lazily unmounts the mounts
//! itself and exits: mvault never hangs after SIGTERM.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Result;
use rustix::process::{Pid, Signal, kill_process};
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};

use super::mountinfo;

/// Extra time the watchdog allows beyond the grace periods.
const SLACK: Duration = Duration::from_secs(10);
/// Time the watchdog allows after a second signal.
const HURRY: Duration = Duration::from_secs(3);
/// How often the signal thread looks for signals and deadlines.
const TICK: Duration = Duration::from_millis(20);

/// A mount the watchdog must clean up if the main thread cannot.
#[derive(Clone, Debug)]
pub struct Cleanup {
    /// Canonical mount point.
    pub path: PathBuf,
    /// Device number of the mount, once confirmed.
    pub dev: Option<u64>,
}

#[derive(Debug, Default)]
struct State {
    /// Signals counted so far (SIGINT while the command runs is not).
    count: u32,
    /// The first signal counted.
    first: Option<i32>,
    /// Skip what is left of the grace period.
    hurry: bool,
    /// The main thread is finishing: a signal now means hurry.
    finishing: bool,
    /// The running command, until it has been reaped.
    command: Option<Pid>,
    /// When the command gets SIGKILL.
    kill_at: Option<Instant>,
    /// When the watchdog ends the process.
    deadline: Option<Instant>,
    mounts: Vec<Cleanup>,
    created: Vec<PathBuf>,
}

/// Handle of the signal thread, shared with the main thread.
pub struct Stop {
    state: Arc<Mutex<State>>,
    /// The last signal caught, set in the handler itself: the signal thread
    /// looks only every TICK, and a mount can finish within that time.
    caught: Arc<AtomicUsize>,
    grace: Duration,
}

impl Stop {
    /// Catches the signals and starts the signal thread.
    pub fn install(grace: Duration) -> Result<Stop> {
        let caught = Arc::new(AtomicUsize::new(0));
        for signal in [SIGINT, SIGTERM, SIGHUP, SIGQUIT] {
            signal_hook::flag::register_usize(signal, Arc::clone(&caught), signal as usize)?;
        }
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT])?;
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            loop {
                for signal in signals.pending() {
                    on_signal(&mut lock(&shared), signal, grace);
                }
                let mut st = lock(&shared);
                let now = Instant::now();
                if let (Some(pid), Some(at)) = (st.command, st.kill_at)
                    && now >= at
                {
                    let _ = kill_process(pid, Signal::KILL);
                    st.kill_at = None;
                }
                if st.deadline.is_some_and(|d| now >= d) {
                    emergency_exit(&st);
                }
                drop(st);
                std::thread::sleep(TICK);
            }
        });
        Ok(Stop {
            state,
            caught,
            grace,
        })
    }

    /// The first signal received, if any: the main thread should stop.
    /// Asked before the command starts (or by `mount`, which has none), so
    /// a signal the thread has not looked at yet counts too.
    pub fn requested(&self) -> Option<i32> {
        lock(&self.state).first.or_else(|| {
            let signal = self.caught.load(Ordering::SeqCst);
            (signal != 0).then_some(signal as i32)
        })
    }

    /// Whether a second signal asked to skip the grace period.
    pub fn hurry(&self) -> bool {
        lock(&self.state).hurry
    }

    /// The main thread is finishing on its own (`run`'s command exited):
    /// a signal from now on cuts the grace period short.
    pub fn finishing(&self) {
        lock(&self.state).finishing = true;
    }

    /// The grace period for open files (and for the command after SIGTERM).
    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// Registers a mount for the watchdog.
    pub fn add_mount(&self, mount: Cleanup) {
        lock(&self.state).mounts.push(mount);
    }

    /// Registers a mount point created by mvault, removed on exit.
    pub fn add_created(&self, path: PathBuf) {
        lock(&self.state).created.push(path);
    }

    /// The command is running as `pid`: signals go to it from now on.
    pub fn command_started(&self, pid: Pid) {
        lock(&self.state).command = Some(pid);
    }

    /// Reaps the command if it has exited (under the lock, so that the
    /// signal thread never signals a reaped, possibly reused, pid).
    pub fn try_wait(&self, child: &mut std::process::Child) -> Option<std::process::ExitStatus> {
        let mut st = lock(&self.state);
        let status = child.try_wait().ok().flatten()?;
        st.command = None;
        st.kill_at = None;
        Some(status)
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

fn on_signal(st: &mut State, signal: i32, grace: Duration) {
    let now = Instant::now();
    if let Some(pid) = st.command {
        if signal == SIGINT {
            return; // the terminal sent it to the command too
        }
        if let Some(sig) = Signal::from_named_raw(signal) {
            let _ = kill_process(pid, sig);
        }
        st.count += 1;
        st.first.get_or_insert(signal);
        st.hurry = st.count > 1;
        st.kill_at = Some(if st.count == 1 { now + grace } else { now });
        st.deadline.get_or_insert(now + grace * 2 + SLACK);
        return;
    }
    st.count += 1;
    st.first.get_or_insert(signal);
    st.hurry = st.count > 1 || st.finishing;
    let deadline = if st.count == 1 {
        now + grace + SLACK
    } else {
        now + HURRY
    };
    st.deadline = Some(st.deadline.map_or(deadline, |d| d.min(deadline)));
}

/// The main thread did not finish in time: abort and detach the mounts,
/// remove the mount points mvault created, and exit.
fn emergency_exit(st: &State) -> ! {
    if let Some(pid) = st.command {
        let _ = kill_process(pid, Signal::KILL);
    }
    for mount in &st.mounts {
        if let Some(dev) = mount.dev {
            let _ = fuse_mount::abort_connection(dev);
        }
        let ours = mountinfo::mounted_at(&mount.path).is_some_and(|m| {
            m.is_mvault()
                && mount.dev.is_none_or(|dev| {
                    m.major == rustix::fs::major(dev) && m.minor == rustix::fs::minor(dev)
                })
        });
        if ours {
            let _ = super::mount::unmount(&mount.path, true);
        }
    }
    for path in &st.created {
        let _ = std::fs::remove_dir(path);
    }
    eprintln!("mvault: stopped by signal; mounts aborted and detached");
    std::process::exit(128 + st.first.unwrap_or(SIGTERM));
}
