//! Checklist "SSH": no root logins and key-only logins, read from the
//! effective configuration (`sshd -T`), or from sshd_config and its
//! `Include`d files when `sshd -T` cannot run (it needs the host keys,
//! so root); skipped where sshd is not installed.

use std::fs;
use std::path::Path;

use super::probe::Probe;
use super::{Check, Host, Status, check};

/// The two settings, lower-cased, and where they were read from.
#[derive(Debug, PartialEq, Eq)]
pub struct Effective {
    pub permit_root_login: String,
    pub password_authentication: String,
    pub source: String,
}

/// `sshd -T` prints `keyword value` lines in lower case.
pub fn from_sshd_t(out: &str) -> Option<Effective> {
    let get = |key: &str| {
        out.lines().find_map(|l| {
            l.strip_prefix(key)?
                .strip_prefix(' ')
                .map(|v| v.trim().to_lowercase())
        })
    };
    Some(Effective {
        permit_root_login: get("permitrootlogin")?,
        password_authentication: get("passwordauthentication")?,
        source: "sshd -T".into(),
    })
}

/// sshd_config semantics: the first value of a keyword wins, `Match`
/// blocks apply only to some connections (ignored here), and `Include`
/// is read in place. Unset values are OpenSSH's defaults.
pub fn from_config(files: &[String]) -> Effective {
    let mut root = None;
    let mut password = None;
    'files: for text in files {
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            let mut words = line.splitn(2, |c: char| c.is_whitespace() || c == '=');
            let (Some(key), Some(value)) = (words.next(), words.next()) else {
                continue;
            };
            let value = value.trim().trim_start_matches('=').trim().to_lowercase();
            match key.to_lowercase().as_str() {
                "match" => continue 'files,
                "permitrootlogin" => root = root.or(Some(value)),
                "passwordauthentication" => password = password.or(Some(value)),
                _ => {}
            }
        }
    }
    Effective {
        permit_root_login: root.unwrap_or_else(|| "prohibit-password".into()),
        password_authentication: password.unwrap_or_else(|| "yes".into()),
        source: "sshd_config (sshd -T needs root)".into(),
    }
}

/// Reads sshd_config with its `Include`s expanded in order (globs of the
/// form `DIR/*.conf`, relative paths under /etc/ssh).
pub fn config_files(host: &Host) -> Vec<String> {
    let mut out = Vec::new();
    read_config(host, &host.etc.join("ssh/sshd_config"), &mut out, 0);
    out
}

fn read_config(host: &Host, path: &Path, out: &mut Vec<String>, depth: u32) {
    let Ok(text) = fs::read_to_string(path) else {
        return;
    };
    let mut before = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        let include = trimmed
            .get(..8)
            .filter(|k| k.eq_ignore_ascii_case("include "))
            .map(|_| trimmed[8..].trim());
        match include {
            Some(pattern) if depth < 8 => {
                out.push(std::mem::take(&mut before));
                for p in pattern.split_whitespace() {
                    for file in expand(host, p) {
                        read_config(host, &file, out, depth + 1);
                    }
                }
            }
            _ => {
                before.push_str(line);
                before.push('\n');
            }
        }
    }
    out.push(before);
}

/// `/etc/ssh/sshd_config.d/*.conf` -> the matching files, sorted.
fn expand(host: &Host, pattern: &str) -> Vec<std::path::PathBuf> {
    let rel = pattern.strip_prefix("/etc/").unwrap_or(pattern);
    let rel = if pattern.starts_with('/') && !pattern.starts_with("/etc/") {
        return Vec::new();
    } else if pattern.starts_with('/') {
        rel.to_string()
    } else {
        format!("ssh/{rel}")
    };
    let full = host.etc.join(&rel);
    let (Some(dir), Some(name)) = (full.parent(), full.file_name()) else {
        return Vec::new();
    };
    let name = name.to_string_lossy();
    let Some((prefix, suffix)) = name.split_once('*') else {
        return vec![full.clone()];
    };
    let mut files: Vec<_> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .map(|n| n.to_string_lossy())
                .is_some_and(|n| n.starts_with(prefix) && n.ends_with(suffix))
        })
        .collect();
    files.sort();
    files
}

/// The two rows: root logins and password logins.
pub fn checks(sshd: &Probe, config: impl FnOnce() -> Vec<String>) -> Vec<Check> {
    let effective = match sshd {
        Probe::Missing => {
            return vec![check("ssh", Status::Ok, "skipped: sshd is not installed")];
        }
        Probe::Output(out) => from_sshd_t(out).unwrap_or_else(|| from_config(&config())),
        Probe::Failed(_) => from_config(&config()),
    };
    let reload = "then: sshd -t && systemctl reload ssh";
    let root = match effective.permit_root_login.as_str() {
        "no" => check(
            "ssh root login",
            Status::Ok,
            format!("PermitRootLogin no ({})", effective.source),
        ),
        v => check(
            "ssh root login",
            Status::Warn,
            format!(
                "PermitRootLogin {v} ({}): root can log in over SSH",
                effective.source
            ),
        )
        .fix(format!(
            "set `PermitRootLogin no` in /etc/ssh/sshd_config.d/00-hardening.conf; {reload}"
        )),
    };
    let password = match effective.password_authentication.as_str() {
        "no" => check("ssh passwords", Status::Ok, format!("PasswordAuthentication no: keys only ({})", effective.source)),
        v => check(
            "ssh passwords",
            Status::Warn,
            format!("PasswordAuthentication {v} ({}): passwords can be guessed over the network", effective.source),
        )
        .fix(format!("set `PasswordAuthentication no` (and `KbdInteractiveAuthentication no`) in /etc/ssh/sshd_config.d/00-hardening.conf; {reload}")),
    };
    vec![root, password]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sshd_t_output_is_authoritative() {
        let out = Probe::Output("port 22\npermitrootlogin no\npasswordauthentication no\n".into());
        let rows = checks(&out, || panic!("config not read when sshd -T works"));
        assert!(rows.iter().all(|c| c.status == Status::Ok), "{rows:?}");
        let out =
            Probe::Output("permitrootlogin without-password\npasswordauthentication yes\n".into());
        let rows = checks(&out, Vec::new);
        assert_eq!(rows[0].status, Status::Warn);
        assert!(rows[0].detail.contains("without-password"));
        assert!(rows[0].fix.as_ref().unwrap().contains("PermitRootLogin no"));
        assert!(
            rows[1]
                .fix
                .as_ref()
                .unwrap()
                .contains("PasswordAuthentication no")
        );
    }

    #[test]
    fn missing_sshd_is_skipped() {
        let rows = checks(&Probe::Missing, || panic!("not read"));
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].status, Status::Ok);
        assert!(rows[0].detail.starts_with("skipped"));
    }

    #[test]
    fn config_first_value_wins_includes_first_and_match_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let host = Host::under(dir.path());
        let ssh = host.etc.join("ssh");
        fs::create_dir_all(ssh.join("sshd_config.d")).unwrap();
        fs::write(
            ssh.join("sshd_config"),
            "Include /etc/ssh/sshd_config.d/*.conf\nPermitRootLogin yes\nPasswordAuthentication yes\n\
             Match User backup\n  PasswordAuthentication yes\n",
        )
        .unwrap();
        fs::write(
            ssh.join("sshd_config.d/50-site.conf"),
            "passwordauthentication=no\n",
        )
        .unwrap();
        fs::write(
            ssh.join("sshd_config.d/ignored.txt"),
            "PermitRootLogin no\n",
        )
        .unwrap();
        let e = from_config(&config_files(&host));
        assert_eq!(e.permit_root_login, "yes");
        assert_eq!(e.password_authentication, "no");
        let rows = checks(&Probe::Failed("no hostkeys".into()), || config_files(&host));
        assert_eq!(rows[0].status, Status::Warn);
        assert_eq!(rows[1].status, Status::Ok);
        // Nothing set: OpenSSH's defaults (root with keys only, passwords on).
        let e = from_config(&[]);
        assert_eq!(
            (
                e.permit_root_login.as_str(),
                e.password_authentication.as_str()
            ),
            ("prohibit-password", "yes")
        );
    }
}
