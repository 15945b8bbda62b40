//! Telling, on each request, that a thread id still names the thread a
//! remembered decision was made for ([`crate::decisions`]).
//!
//! **A pidfd per remembered thread** (`pidfd_open(tid, PIDFD_THREAD)`,
//! Linux 6.9+), opened *before* the decision is made. A pidfd pins the
//! kernel's `struct pid` of that thread, not its number: the number is
//! freed when the thread is reaped and may then go to a new thread, whose
//! `struct pid` is another one. `poll` on a thread pidfd reports it
//! readable once the thread has exited (`EPOLLIN`) or been reaped
//! (`EPOLLHUP`); not readable means a live thread still has that
//! `struct pid`, so the number still belongs to it, and a request that
//! carries that id came from it. One `poll` with a zero timeout per
//! request: no `/proc` open, read or close, no text to parse. (The thread
//! that `exec`s in a multi-threaded process takes the group leader's
//! `struct pid`, and with it the leader's remembered decision, as it takes
//! the leader's start time: `exec` keeps the ancestry, which is all a
//! remembered decision rests on.)
//!
//! Since the pidfd is opened before the decision and checked again after
//! it ([`Witness::holds`]), the decision read about the witnessed thread:
//! had that thread been reaped between the two, the check fails and
//! nothing is remembered.
//!
//! **Fallback: the start time** (`/proc/<tid>/stat` field 22, clock ticks
//! since boot), read again on every request, where `pidfd_open` fails
//! (kernels before 6.9 refuse `PIDFD_THREAD` with `EINVAL`, before 5.3 the
//! call is missing, or the process is out of file descriptors). That is
//! how every decision was keyed before; it misses only a thread that
//! reuses an id within the same clock tick as the one before it, a case
//! the pidfd does not have.

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::fs::OFlags;
use rustix::process::{Pid, PidfdFlags, pidfd_open};

/// Evidence of which thread held a thread id when it was taken.
#[derive(Debug)]
pub(crate) enum Witness {
    /// A pidfd of the thread (`PIDFD_THREAD`).
    Pidfd(OwnedFd),
    /// The thread's start time, where no pidfd could be had.
    StartTime(u64),
}

impl Witness {
    /// Evidence for thread `tid` now; a pidfd if `pidfds` and the kernel
    /// gives one, else its start time; `None` when the thread is gone or
    /// its `/proc` entry cannot be read.
    pub fn take(tid: u32, pidfds: bool) -> Option<Witness> {
        let pid = Pid::from_raw(i32::try_from(tid).ok()?)?;
        if pidfds {
            // PIDFD_THREAD is O_EXCL (include/uapi/linux/pidfd.h).
            let thread = PidfdFlags::from_bits_retain(OFlags::EXCL.bits());
            if let Ok(fd) = pidfd_open(pid, thread) {
                return Some(Witness::Pidfd(fd));
            }
        }
        start_time(tid).map(Witness::StartTime)
    }

    /// Whether thread id `tid` still names the thread this evidence was
    /// taken of (see the module doc). Any error reads as "no".
    pub fn holds(&self, tid: u32) -> bool {
        match self {
            Witness::Pidfd(fd) => {
                let fd = fd.as_fd();
                let mut fds = [PollFd::new(&fd, PollFlags::IN)];
                // A zero timeout: poll answers at once, and never blocks.
                let now = Timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                matches!(poll(&mut fds, Some(&now)), Ok(0)) && fds[0].revents().is_empty()
            }
            Witness::StartTime(then) => start_time(tid) == Some(*then),
        }
    }
}

/// The start time of thread `tid` from `/proc/<tid>/stat`.
fn start_time(tid: u32) -> Option<u64> {
    if tid == 0 {
        return None;
    }
    // `take` keeps `read_to_end` from asking the size first (procfs files
    // report 0): one open, one or two reads, one close.
    let file = std::fs::File::open(format!("/proc/{tid}/stat")).ok()?;
    let mut stat = Vec::with_capacity(512);
    file.take(4096).read_to_end(&mut stat).ok()?;
    start_time_of(&stat)
}

/// Field 22 (start time) of the text of `/proc/<id>/stat`. The command
/// name (field 2) may hold spaces and parentheses, so fields are counted
/// from its closing parenthesis, the last one in the line.
fn start_time_of(stat: &[u8]) -> Option<u64> {
    let close = stat.iter().rposition(|b| *b == b')')?;
    let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
    // After the name: field 3 (state) is the first, so field 22 the 20th.
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::procinfo::ProcessId;

    #[test]
    fn start_time_is_field_22_whatever_the_command_name() {
        let tail = "S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 4242 99 100";
        assert_eq!(
            start_time_of(format!("7 (sh) {tail}").as_bytes()),
            Some(4242)
        );
        assert_eq!(
            start_time_of(format!("7 (a) b (c)) {tail}").as_bytes()),
            Some(4242),
            "a name with spaces and parentheses"
        );
        assert_eq!(start_time_of(b"7 (sh) S 1 2"), None, "cut short");
        assert_eq!(start_time_of(b"garbage"), None);
    }

    #[test]
    fn the_start_time_of_this_process_is_its_process_start_time() {
        let me = std::process::id();
        let process = ProcessId::of(me as i32).expect("own /proc entry");
        assert_eq!(start_time(me), Some(process.start_time));
        assert!(
            matches!(Witness::take(me, false), Some(Witness::StartTime(t)) if t == process.start_time)
        );
        assert!(Witness::take(0, true).is_none(), "no thread, no witness");
    }

    /// Thread id of the calling thread.
    fn gettid() -> u32 {
        // `/proc/thread-self` links to `<pid>/task/<tid>`.
        let link = std::fs::read_link("/proc/thread-self").expect("/proc/thread-self");
        let tid = link.file_name().expect("a tid").to_str().expect("digits");
        tid.parse().expect("a tid")
    }

    #[test]
    fn a_thread_pidfd_holds_while_the_thread_lives_and_not_after() {
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            tx.send(gettid()).unwrap();
            stop_rx.recv().ok();
        });
        let tid = rx.recv().unwrap();
        assert_ne!(tid, std::process::id(), "not the group leader");
        let witness = Witness::take(tid, true).expect("a live thread");
        assert!(matches!(witness, Witness::Pidfd(_)), "kernel 6.9+");
        assert!(witness.holds(tid));
        stop_tx.send(()).unwrap();
        thread.join().unwrap();
        // The kernel reaps a finished thread shortly after `join` returns.
        let deadline = Instant::now() + Duration::from_secs(10);
        while witness.holds(tid) {
            assert!(Instant::now() < deadline, "thread {tid} still held");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
