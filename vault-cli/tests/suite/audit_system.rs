//! `--audit-log journal` and `--audit-log syslog` on real FUSE mounts: the
//! records reach a private socket (`MVAULT_JOURNAL_SOCKET`,
//! `MVAULT_SYSLOG_SOCKET`) as journald's native fields and as RFC 5424
//! with structured data, the log fails closed when the socket goes away,
//! a daemon that is not listening refuses the mount, and `./journal` is
//! still a file. The last test reads the records back from a real
//! systemd-journald where one runs (skipped with a message elsewhere).
//!
//! Needs /dev/fuse, fusermount3 and root; skipped with a message
//! elsewhere, unless MVAULT_REQUIRE_E2E=1 makes missing FUSE fail.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

use crate::mount_audit::{mount_foreground_with, root_with_fuse, sealed_fixture, unmount};
use crate::util::Env;
use crate::util::mount::audit_lines;

const EIO: i32 = 5;
const EXIT_IO: i32 = 6;
/// `MESSAGE_ID` of an allowed access (fuse-mount/src/audit/system.rs).
const ALLOWED: &str = "910afc83881e42c8a25f39f4889cf44e";
const RELEASE: &str = "6ca75b7e8efa4aa98ee3d8567757ce71";

/// journald's native format back into fields (binary-safe values too).
fn journal_fields(mut bytes: &[u8]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    while let Some(nl) = bytes.iter().position(|b| *b == b'\n') {
        let line = &bytes[..nl];
        if let Some(eq) = line.iter().position(|b| *b == b'=') {
            out.insert(
                String::from_utf8_lossy(&line[..eq]).into_owned(),
                String::from_utf8_lossy(&line[eq + 1..]).into_owned(),
            );
            bytes = &bytes[nl + 1..];
        } else {
            let len = u64::from_le_bytes(bytes[nl + 1..nl + 9].try_into().unwrap()) as usize;
            let value = &bytes[nl + 9..nl + 9 + len];
            out.insert(
                String::from_utf8_lossy(line).into_owned(),
                String::from_utf8_lossy(value).into_owned(),
            );
            bytes = &bytes[nl + 10 + len..];
        }
    }
    out
}

/// Every datagram that arrives within a second of the last.
fn drain(sock: &UnixDatagram) -> Vec<Vec<u8>> {
    sock.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut buf = vec![0u8; 1 << 17];
    let mut out = Vec::new();
    while let Ok(n) = sock.recv(&mut buf) {
        out.push(buf[..n].to_vec());
    }
    out
}

/// Mounts with `--audit-log TARGET` and the socket variable pointing at a
/// private socket; reads x.bin, removes the socket (the next open must get
/// EIO), unmounts, and returns the datagrams and the daemon's stderr.
fn mount_to_socket(target: &str, var: &str) -> Option<(Vec<Vec<u8>>, String)> {
    if !root_with_fuse() {
        return None;
    }
    let env = Env::new();
    let (sealed, data) = sealed_fixture(&env);
    let socket = env.path("log.sock");
    let server = UnixDatagram::bind(&socket).unwrap();
    let mnt = env.path("mnt");
    let extra: [&OsStr; 2] = ["--audit-log".as_ref(), target.as_ref()];
    let guard = mount_foreground_with(&env, &sealed, &mnt, &extra, &[(var, &socket)]);
    assert_eq!(fs::read(mnt.join("x.bin")).unwrap(), data);
    let got = drain(&server);
    drop(server);
    fs::remove_file(&socket).unwrap();
    let err = fs::read(mnt.join("x.bin")).expect_err("no log listening: refused");
    assert_eq!(err.raw_os_error(), Some(EIO), "{err}");
    let stderr = unmount(&env, guard);
    assert!(stderr.contains("cannot write the audit log"), "{stderr}");
    Some((got, stderr))
}

#[test]
fn journal_records_are_native_fields_with_message_ids_and_fail_closed() {
    let Some((got, _)) = mount_to_socket("journal", "MVAULT_JOURNAL_SOCKET") else {
        return;
    };
    let records: Vec<BTreeMap<String, String>> = got.iter().map(|d| journal_fields(d)).collect();
    let open = records
        .iter()
        .find(|r| r.get("MVAULT_EVENT").map(String::as_str) == Some("open"))
        .unwrap_or_else(|| panic!("no open record in {records:#?}"));
    assert_eq!(open["MESSAGE_ID"], ALLOWED);
    assert_eq!(open["MVAULT_DECISION"], "allow");
    assert_eq!(open["MVAULT_PATH"], "/x.bin");
    assert_eq!(open["SYSLOG_IDENTIFIER"], "mvault");
    assert_eq!(open["PRIORITY"], "6");
    assert_eq!(open["MVAULT_PID"], std::process::id().to_string());
    assert!(
        open["MESSAGE"].starts_with("mvault: allow open /x.bin by pid"),
        "{open:?}"
    );
    let release = records
        .iter()
        .find(|r| r.get("MESSAGE_ID").map(String::as_str) == Some(RELEASE))
        .unwrap_or_else(|| panic!("no release record in {records:#?}"));
    assert!(release.contains_key("MVAULT_BYTES_READ"), "{release:?}");
}

#[test]
fn syslog_records_are_rfc5424_with_structured_data_and_fail_closed() {
    let Some((got, _)) = mount_to_socket("syslog", "MVAULT_SYSLOG_SOCKET") else {
        return;
    };
    let lines: Vec<String> = got
        .iter()
        .map(|d| String::from_utf8(d.clone()).unwrap())
        .collect();
    let open = lines
        .iter()
        .find(|l| l.contains(" open [mvault@32473 ") && l.contains(" decision=\"allow\""))
        .unwrap_or_else(|| panic!("no open record in {lines:#?}"));
    // authpriv.info, version 1, then the record's own RFC 3339 time.
    assert!(open.starts_with("<86>1 20"), "{open}");
    assert!(open.contains(" mvault "), "{open}");
    assert!(open.contains(" path=\"/x.bin\""), "{open}");
    assert!(
        open.contains(&format!(" pid=\"{}\"", std::process::id())),
        "{open}"
    );
}

#[test]
fn a_system_log_that_is_not_listening_refuses_the_mount() {
    if !root_with_fuse() {
        return;
    }
    let env = Env::new();
    let (sealed, _) = sealed_fixture(&env);
    let socket = env.path("nobody.sock");
    std::fs::create_dir_all(env.path("mnt")).unwrap();
    let out = env
        .cmd()
        .env("MVAULT_JOURNAL_SOCKET", &socket)
        .args(["mount", "--foreground", "--audit-log", "journal"])
        .arg(&sealed)
        .arg(env.path("mnt"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(EXIT_IO), "{stderr}");
    assert!(stderr.contains("nobody.sock"), "{stderr}");
}

#[test]
fn a_file_named_journal_is_written_as_dot_slash_journal() {
    if !root_with_fuse() {
        return;
    }
    let env = Env::new();
    let (sealed, data) = sealed_fixture(&env);
    let mnt = env.path("mnt");
    let extra: [&OsStr; 2] = ["--audit-log".as_ref(), "./journal".as_ref()];
    let guard = mount_foreground_with(&env, &sealed, &mnt, &extra, &[]);
    assert_eq!(fs::read(mnt.join("x.bin")).unwrap(), data);
    unmount(&env, guard);
    let lines = audit_lines(&env.path("journal"));
    assert!(lines.iter().any(|l| l["event"] == "open"), "{lines:?}");
}

#[test]
fn a_real_journald_keeps_the_records() {
    let socket = Path::new("/run/systemd/journal/socket");
    if !socket.exists() || !root_with_fuse() {
        eprintln!(
            "*** SKIPPING: no systemd-journald listening on {} (the protocol is checked against a private socket in journal_records_are_native_fields_with_message_ids_and_fail_closed) ***",
            socket.display()
        );
        return;
    }
    let env = Env::new();
    let (sealed, data) = sealed_fixture(&env);
    let mnt = env.path("mnt");
    let extra: [&OsStr; 2] = ["--audit-log".as_ref(), "journal".as_ref()];
    let guard = mount_foreground_with(&env, &sealed, &mnt, &extra, &[]);
    assert_eq!(fs::read(mnt.join("x.bin")).unwrap(), data);
    unmount(&env, guard);
    let pid = std::process::id().to_string();
    let found = crate::util::mount::wait_until(Duration::from_secs(10), || {
        let out = std::process::Command::new("journalctl")
            .args(["-o", "json", "--no-pager", &format!("MESSAGE_ID={ALLOWED}")])
            .arg(format!("MVAULT_PID={pid}"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains("\"MVAULT_PATH\":\"/x.bin\"")
    });
    assert!(
        found,
        "journalctl MESSAGE_ID={ALLOWED} MVAULT_PID={pid} shows the open"
    );
}
