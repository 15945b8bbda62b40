//! Audit records to the system's own logs: journald over its native
//! protocol (`--audit-log journal`: one datagram of `KEY=value` fields to
//! /run/systemd/journal/socket, with a `MESSAGE_ID` per kind of event) and
//! syslog (`--audit-log syslog`: RFC 5424 with the record as structured
//! data, one datagram to /dev/log). `MVAULT_JOURNAL_SOCKET` and
//! `MVAULT_SYSLOG_SOCKET` name another socket (tests, containers).

use std::io::ErrorKind;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;

use serde_json::Value;

use super::Record;

/// Which system log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SystemLog {
    /// systemd-journald's native socket.
    Journal,
    /// The syslog socket, RFC 5424.
    Syslog,
}

/// The longest command line sent to a system log; longer ones are cut
/// (and marked) so that a record always fits one datagram.
pub const MAX_CMDLINE: usize = 16 * 1024;

/// `MESSAGE_ID`s: allowed access, denied access, release, denial summary.
pub const MESSAGE_ALLOWED: &str = "910afc83881e42c8a25f39f4889cf44e";
pub const MESSAGE_DENIED: &str = "3dac312c1961451da31dc959c72696a5";
pub const MESSAGE_RELEASE: &str = "6ca75b7e8efa4aa98ee3d8567757ce71";
pub const MESSAGE_DENY_SUMMARY: &str = "1bf5479260c0466fb13e062ca77b966d";
/// `MESSAGE_ID`s of writable mounts: a file written (at release), a commit.
pub const MESSAGE_WRITTEN: &str = "765d78412258468aaca4d3a93aa53b14";
pub const MESSAGE_COMMIT: &str = "6db345f7cbfb4912b0fd51285285f32c";

/// The SD-ID of the RFC 5424 structured data (32473 is the enterprise
/// number RFC 5612 sets aside for examples and private use).
pub const SD_ID: &str = "mvault@32473";

impl SystemLog {
    /// The socket records go to.
    pub fn socket(self) -> PathBuf {
        let (var, default) = match self {
            SystemLog::Journal => ("MVAULT_JOURNAL_SOCKET", "/run/systemd/journal/socket"),
            SystemLog::Syslog => ("MVAULT_SYSLOG_SOCKET", "/dev/log"),
        };
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map_or_else(|| PathBuf::from(default), PathBuf::from)
    }

    /// The name used in messages (`journald (/run/...)`).
    pub fn describe(self) -> String {
        let name = match self {
            SystemLog::Journal => "journald",
            SystemLog::Syslog => "syslog",
        };
        format!("{name} ({})", self.socket().display())
    }
}

/// A socket to a system log.
pub(super) struct SystemSink {
    kind: SystemLog,
    socket: PathBuf,
    sock: UnixDatagram,
    host: String,
}

impl SystemSink {
    /// Checks that something listens on the log's socket (a daemon that is
    /// not running refuses the mount, as an unwritable file does).
    pub(super) fn open(kind: SystemLog) -> std::io::Result<SystemSink> {
        let socket = kind.socket();
        UnixDatagram::unbound()?.connect(&socket)?;
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        Ok(SystemSink {
            kind,
            socket,
            sock: UnixDatagram::unbound()?,
            host,
        })
    }

    /// Sends one record as one datagram; the record counts as written
    /// when the kernel took all of it.
    pub(super) fn send(&self, record: &Record<'_>) -> std::io::Result<()> {
        let bytes = match self.kind {
            SystemLog::Journal => journal_datagram(record),
            SystemLog::Syslog => syslog_datagram(record, &self.host, std::process::id()),
        };
        loop {
            match self.sock.send_to(&bytes, &self.socket) {
                Ok(n) if n == bytes.len() => return Ok(()),
                Ok(n) => {
                    return Err(std::io::Error::other(format!(
                        "short send ({n} of {} bytes)",
                        bytes.len()
                    )));
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// The record's fields as (name, text) pairs, in the JSON line's order,
/// the command line cut at [`MAX_CMDLINE`].
fn fields(record: &Record<'_>) -> Vec<(String, String)> {
    let Ok(Value::Object(map)) = serde_json::to_value(record) else {
        return Vec::new();
    };
    map.into_iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| {
            let mut text = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            if k == "cmdline" && text.len() > MAX_CMDLINE {
                let mut cut = MAX_CMDLINE;
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                let dropped = text.len() - cut;
                text.truncate(cut);
                text.push_str(&format!("...[{dropped} more bytes]"));
            }
            (k, text)
        })
        .collect()
}

/// The one-line summary journalctl and syslog readers see.
fn message(record: &Record<'_>) -> String {
    let who = format!(
        "pid {} uid {} ({})",
        record.pid.map_or("?".to_string(), |p| p.to_string()),
        record.uid,
        record.exe.as_deref().unwrap_or("?")
    );
    match (record.event, record.decision) {
        ("release", _) => format!(
            "mvault: release {} by {who}, {} bytes read",
            record.path,
            record.bytes_read.unwrap_or(0)
        ),
        ("written", _) => format!(
            "mvault: wrote {} by {who}, {} bytes written",
            record.path,
            record.bytes_written.unwrap_or(0)
        ),
        ("commit", _) => format!(
            "mvault: committed generation {} ({} bytes written)",
            record.generation.unwrap_or(0),
            record.bytes_written.unwrap_or(0)
        ),
        ("deny_summary", _) => format!(
            "mvault: {} more {} denials of {who} ({}), last {}",
            record.count.unwrap_or(0),
            record.of.unwrap_or("?"),
            record.reason.unwrap_or("?"),
            record.path
        ),
        (event, Some("deny")) => format!(
            "mvault: deny {event} {} by {who}: {}",
            record.path,
            record.reason.unwrap_or("?")
        ),
        (event, _) => format!("mvault: allow {event} {} by {who}", record.path),
    }
}

fn message_id(record: &Record<'_>) -> &'static str {
    match (record.event, record.decision) {
        ("release", _) => MESSAGE_RELEASE,
        ("written", _) => MESSAGE_WRITTEN,
        ("commit", _) => MESSAGE_COMMIT,
        ("deny_summary", _) => MESSAGE_DENY_SUMMARY,
        (_, Some("deny")) => MESSAGE_DENIED,
        _ => MESSAGE_ALLOWED,
    }
}

/// syslog severity: denials are warnings (4), the rest informational (6).
fn severity(record: &Record<'_>) -> u8 {
    if record.decision == Some("deny") {
        4
    } else {
        6
    }
}

/// journald's native format: `KEY=value\n`, or for a value with a newline
/// `KEY\n`, its length as 64-bit little-endian, the bytes, `\n`.
pub fn journal_datagram(record: &Record<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    let mut field = |key: &str, value: &str| {
        out.extend_from_slice(key.as_bytes());
        if value.contains('\n') {
            out.push(b'\n');
            out.extend_from_slice(&(value.len() as u64).to_le_bytes());
        } else {
            out.push(b'=');
        }
        out.extend_from_slice(value.as_bytes());
        out.push(b'\n');
    };
    field("MESSAGE", &message(record));
    field("MESSAGE_ID", message_id(record));
    field("PRIORITY", &severity(record).to_string());
    field("SYSLOG_FACILITY", "10");
    field("SYSLOG_IDENTIFIER", "mvault");
    for (k, v) in fields(record) {
        field(&format!("MVAULT_{}", k.to_ascii_uppercase()), &v);
    }
    out
}

/// RFC 5424: `<PRI>1 TIME HOST mvault PID MSGID [mvault@32473 k="v" ...] MSG`,
/// facility authpriv (10).
pub fn syslog_datagram(record: &Record<'_>, host: &str, pid: u32) -> Vec<u8> {
    let pri = 10 * 8 + u32::from(severity(record));
    let host: String = host
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    let host = if host.is_empty() {
        "-".to_string()
    } else {
        host
    };
    let mut sd = format!("[{SD_ID}");
    for (k, v) in fields(record) {
        if k == "time" {
            continue;
        }
        let escaped = v
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace(']', "\\]");
        sd.push_str(&format!(" {k}=\"{escaped}\""));
    }
    sd.push(']');
    let line = format!(
        "<{pri}>1 {} {host} mvault {pid} {} {sd} {}",
        record.time,
        record.event,
        message(record).replace('\n', " ")
    );
    line.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record<'a>(decision: Option<&'a str>, cmdline: &'a str) -> Record<'a> {
        Record {
            time: "2026-11-30T10:00:00.000Z".into(),
            event: "open",
            decision,
            reason: decision
                .filter(|d| *d == "deny")
                .map(|_| "uid 1001 \"not\" [allowed]"),
            pid: Some(42),
            tid: 42,
            uid: 1001,
            gid: 1001,
            exe: Some("/usr/bin/python3".into()),
            cmdline: Some(cmdline),
            path: "/ckpt/model.pt",
            bytes_read: None,
            bytes_written: None,
            generation: None,
            count: None,
            of: None,
        }
    }

    /// Parses the native format back into (key, value) pairs.
    fn parse_journal(mut bytes: &[u8]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let nl = bytes.iter().position(|b| *b == b'\n').unwrap();
            let line = &bytes[..nl];
            if let Some(eq) = line.iter().position(|b| *b == b'=') {
                out.push((
                    String::from_utf8(line[..eq].to_vec()).unwrap(),
                    String::from_utf8(line[eq + 1..].to_vec()).unwrap(),
                ));
                bytes = &bytes[nl + 1..];
            } else {
                let key = String::from_utf8(line.to_vec()).unwrap();
                let len = u64::from_le_bytes(bytes[nl + 1..nl + 9].try_into().unwrap()) as usize;
                let value = &bytes[nl + 9..nl + 9 + len];
                assert_eq!(bytes[nl + 9 + len], b'\n');
                out.push((key, String::from_utf8(value.to_vec()).unwrap()));
                bytes = &bytes[nl + 10 + len..];
            }
        }
        out
    }

    #[test]
    fn journal_fields_with_message_ids_and_binary_safe_values() {
        let r = record(Some("allow"), "python3\ntrain.py");
        let fields = parse_journal(&journal_datagram(&r));
        let get = |k: &str| fields.iter().find(|(f, _)| f == k).map(|(_, v)| v.as_str());
        assert_eq!(get("MESSAGE_ID"), Some(MESSAGE_ALLOWED));
        assert_eq!(get("PRIORITY"), Some("6"));
        assert_eq!(get("MVAULT_PATH"), Some("/ckpt/model.pt"));
        assert_eq!(get("MVAULT_CMDLINE"), Some("python3\ntrain.py"));
        assert_eq!(get("MVAULT_UID"), Some("1001"));
        assert_eq!(get("MVAULT_DECISION"), Some("allow"));
        assert!(
            get("MESSAGE")
                .unwrap()
                .starts_with("mvault: allow open /ckpt/model.pt")
        );
        let denied = parse_journal(&journal_datagram(&record(Some("deny"), "x")));
        assert!(denied.contains(&("MESSAGE_ID".into(), MESSAGE_DENIED.into())));
        assert!(denied.contains(&("PRIORITY".into(), "4".into())));
    }

    #[test]
    fn syslog_is_rfc5424_with_escaped_structured_data() {
        let r = record(Some("deny"), "a");
        let line = String::from_utf8(syslog_datagram(&r, "gpu-1", 7)).unwrap();
        assert!(
            line.starts_with("<84>1 2026-11-30T10:00:00.000Z gpu-1 mvault 7 open [mvault@32473 "),
            "{line}"
        );
        assert!(line.contains(" event=\"open\""), "{line}");
        assert!(line.contains(" decision=\"deny\""), "{line}");
        assert!(
            line.contains(r#"reason="uid 1001 \"not\" [allowed\]""#),
            "{line}"
        );
        assert!(line.contains("path=\"/ckpt/model.pt\""), "{line}");
        assert!(line.ends_with("] mvault: deny open /ckpt/model.pt by pid 42 uid 1001 (/usr/bin/python3): uid 1001 \"not\" [allowed]"), "{line}");
    }

    #[test]
    fn long_command_lines_are_cut_and_marked() {
        let long = "é".repeat(MAX_CMDLINE);
        let r = record(Some("allow"), &long);
        let cmd = fields(&r)
            .into_iter()
            .find(|(k, _)| k == "cmdline")
            .unwrap()
            .1;
        assert!(cmd.len() < MAX_CMDLINE + 40);
        assert!(cmd.ends_with(&format!("...[{} more bytes]", long.len() - MAX_CMDLINE)));
    }

    #[test]
    fn a_private_socket_gets_one_datagram_per_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        let sink = SystemSink {
            kind: SystemLog::Journal,
            socket: path.clone(),
            sock: UnixDatagram::unbound().unwrap(),
            host: "h".into(),
        };
        sink.send(&record(Some("allow"), "x")).unwrap();
        let mut buf = vec![0u8; 65536];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(
            &buf[..n],
            journal_datagram(&record(Some("allow"), "x")).as_slice()
        );
        drop(server);
        std::fs::remove_file(&path).unwrap();
        assert!(
            sink.send(&record(Some("allow"), "x")).is_err(),
            "no listener: lost"
        );
    }
}
