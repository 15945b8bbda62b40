//! Telling someone that the audit log cannot be written. A background
//! mount's standard error goes to /dev/null, so each change of state is
//! also sent to syslog (`/dev/log`, which journald reads) when that socket
//! exists. Only changes are reported, not every lost record.

use std::os::unix::net::UnixDatagram;
use std::path::Path;

/// Whether records are being lost, and how many were.
pub(super) struct Health {
    /// The log, as messages name it (a path, or `journald (SOCKET)`).
    target: String,
    fail_open: bool,
    failing: bool,
    lost: u64,
}

impl Health {
    /// A log named `target` that works so far.
    pub(super) fn new(target: String, fail_open: bool) -> Self {
        Health {
            target,
            fail_open,
            failing: false,
            lost: 0,
        }
    }

    /// Notes a record that could not be written, reporting the first of a run.
    pub(super) fn lost(&mut self, error: &std::io::Error) {
        self.lost += 1;
        if !self.failing {
            self.failing = true;
            let consequence = if self.fail_open {
                "allowed opens are served UNAUDITED (--audit-fail-open)"
            } else {
                "allowed opens are refused with EIO until it can be written again"
            };
            report(&format!(
                "cannot write the audit log {}: {error}; {consequence}",
                self.target
            ));
        }
    }

    /// Notes a record written whole, reporting the end of a run of failures.
    pub(super) fn written(&mut self) {
        if self.failing {
            self.failing = false;
            report(&format!(
                "the audit log {} is writable again ({} records lost so far)",
                self.target, self.lost
            ));
        }
    }

    /// Records lost since the log was opened.
    pub(super) fn lost_count(&self) -> u64 {
        self.lost
    }
}

/// Writes `message` to standard error and, if there is one, to syslog.
pub(super) fn report(message: &str) {
    eprintln!("mvault: {message}");
    to_syslog(Path::new("/dev/log"), message);
}

/// Sends one `authpriv.err` message to the syslog socket at `socket`;
/// nothing happens if there is none.
fn to_syslog(socket: &Path, message: &str) {
    // <PRI> = facility authpriv (10) * 8 + severity err (3).
    let line = format!("<83>mvault[{}]: {message}", std::process::id());
    if let Ok(sock) = UnixDatagram::unbound() {
        let _ = sock.send_to(line.as_bytes(), socket);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syslog_gets_one_datagram_with_priority_and_tag() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("log");
        let server = UnixDatagram::bind(&socket).unwrap();
        to_syslog(&socket, "audit log full");
        let mut buf = [0u8; 256];
        let n = server.recv(&mut buf).unwrap();
        let got = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(got.starts_with("<83>mvault["), "{got}");
        assert!(got.ends_with("]: audit log full"), "{got}");
    }
}
