//! Checklist "updates": unattended-upgrades installed and enabled, and the
//! security updates the local package lists already know about (no
//! network: `apt-get -s` simulates an upgrade from the lists on disk).

use std::fs;
use std::time::{Duration, SystemTime};

use super::probe::Probe;
use super::{Check, Host, Status, check};

/// Whether `package` is installed according to dpkg's status file.
pub fn dpkg_installed(status_file: &str, package: &str) -> bool {
    status_file.split("\n\n").any(|stanza| {
        let mut name = false;
        let mut installed = false;
        for line in stanza.lines() {
            if let Some(v) = line.strip_prefix("Package:") {
                name = v.trim() == package;
            } else if let Some(v) = line.strip_prefix("Status:") {
                installed = v.trim().ends_with(" installed");
            }
        }
        name && installed
    })
}

/// The last value given to `key` in apt configuration text (`apt-config
/// dump` output or an apt.conf.d file): `Key "value";` lines.
fn apt_value(text: &str, key: &str) -> Option<String> {
    let mut found = None;
    for line in text.lines() {
        let line = line.split("//").next().unwrap_or("").trim();
        let Some(rest) = line.strip_prefix(key) else {
            continue;
        };
        if !rest.starts_with([' ', '\t']) {
            continue;
        }
        let value = rest.trim().trim_end_matches(';').trim().trim_matches('"');
        found = Some(value.to_string());
    }
    found
}

/// What the host's files and `apt-config dump` say about unattended-upgrades.
pub struct UpgradeInputs<'a> {
    /// /var/lib/dpkg/status (None: not a dpkg system).
    pub dpkg_status: Option<&'a str>,
    /// `apt-config dump`.
    pub apt_dump: &'a Probe,
    /// The files of /etc/apt/apt.conf.d in name order (used when apt-config
    /// cannot run).
    pub conf_d: &'a [(String, String)],
}

/// unattended-upgrades installed and `APT::Periodic::Unattended-Upgrade` on.
pub fn unattended_upgrades(input: &UpgradeInputs<'_>) -> Check {
    const NAME: &str = "unattended-upgrades";
    let Some(status) = input.dpkg_status else {
        return check(
            NAME,
            Status::Ok,
            "skipped: no dpkg status file (not a Debian host)",
        );
    };
    let fix = "apt install unattended-upgrades && dpkg-reconfigure -plow unattended-upgrades (writes APT::Periodic::Unattended-Upgrade \"1\" to /etc/apt/apt.conf.d/20auto-upgrades)";
    if !dpkg_installed(status, "unattended-upgrades") {
        return check(
            NAME,
            Status::Warn,
            "not installed: security updates wait for someone to run apt",
        )
        .fix(fix);
    }
    const KEY: &str = "APT::Periodic::Unattended-Upgrade";
    let (value, source) = match input.apt_dump.output() {
        Some(dump) => (apt_value(dump, KEY), "apt-config dump"),
        None => (
            input
                .conf_d
                .iter()
                .rev()
                .find_map(|(_, text)| apt_value(text, KEY)),
            "/etc/apt/apt.conf.d",
        ),
    };
    match value.as_deref() {
        Some(v) if v != "0" && !v.is_empty() => check(
            NAME,
            Status::Ok,
            format!("installed; {KEY} \"{v}\" ({source})"),
        ),
        Some(v) => check(
            NAME,
            Status::Warn,
            format!("installed but off: {KEY} \"{v}\" ({source})"),
        )
        .fix(fix),
        None => check(
            NAME,
            Status::Warn,
            format!("installed but not enabled: no {KEY} ({source})"),
        )
        .fix(fix),
    }
}

/// Packages an `apt-get -s` simulation would upgrade from a security suite.
pub fn pending_security(simulation: &str) -> Vec<String> {
    simulation
        .lines()
        .filter_map(|l| l.strip_prefix("Inst "))
        .filter(|l| {
            let origin = l.split_once('(').map_or("", |(_, o)| o);
            origin.contains("-security") || origin.contains("Debian-Security")
        })
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Pending security updates, and how old the package lists are.
pub fn security_updates(simulation: &Probe, lists_age: Option<Duration>) -> Check {
    const NAME: &str = "security updates";
    let fix = "apt-get update && apt-get upgrade (or unattended-upgrade -v); reboot if the kernel or libc changed";
    let age = match lists_age {
        None => {
            return check(
                NAME,
                Status::Warn,
                "no package lists in /var/lib/apt/lists: updates cannot be known",
            )
            .fix("apt-get update");
        }
        Some(a) => a,
    };
    let days = age.as_secs() / 86_400;
    let out = match simulation {
        Probe::Missing => {
            return check(
                NAME,
                Status::Ok,
                "skipped: apt-get not found (not a Debian host)",
            );
        }
        Probe::Failed(e) => {
            return check(
                NAME,
                Status::Warn,
                format!("apt-get -s upgrade failed: {e}"),
            )
            .fix("run apt-get -s dist-upgrade to see why");
        }
        Probe::Output(out) => out,
    };
    let pending = pending_security(out);
    let stale = if days > 7 {
        format!("; the package lists are {days} days old, so there may be more")
    } else {
        String::new()
    };
    if pending.is_empty() && days <= 7 {
        return check(
            NAME,
            Status::Ok,
            format!("none pending (package lists {days} day(s) old)"),
        );
    }
    if pending.is_empty() {
        return check(NAME, Status::Warn, format!("none known{stale}"))
            .fix("apt-get update, then run doctor again");
    }
    let mut names: Vec<&str> = pending.iter().map(String::as_str).take(8).collect();
    if pending.len() > names.len() {
        names.push("...");
    }
    check(
        NAME,
        Status::Warn,
        format!(
            "{} pending from the security suite: {}{stale}",
            pending.len(),
            names.join(", ")
        ),
    )
    .fix(fix)
}

/// The age of the newest file in /var/lib/apt/lists (None: no lists).
pub fn lists_age(host: &Host, now: SystemTime) -> Option<Duration> {
    let newest = fs::read_dir(host.var.join("lib/apt/lists"))
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("_dists_"))
        .filter_map(|e| e.metadata().ok()?.modified().ok())
        .max()?;
    Some(now.duration_since(newest).unwrap_or_default())
}

/// Reads /var/lib/dpkg/status and /etc/apt/apt.conf.d, and asks apt-config.
pub fn checks(host: &Host, simulate: bool) -> Vec<Check> {
    let status = fs::read_to_string(host.var.join("lib/dpkg/status")).ok();
    let dump = super::probe::run("apt-config", &["dump"]);
    let mut conf_d: Vec<(String, String)> = fs::read_dir(host.etc.join("apt/apt.conf.d"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            Some((
                e.file_name().to_string_lossy().into_owned(),
                fs::read_to_string(e.path()).ok()?,
            ))
        })
        .collect();
    conf_d.sort();
    let mut out = vec![unattended_upgrades(&UpgradeInputs {
        dpkg_status: status.as_deref(),
        apt_dump: &dump,
        conf_d: &conf_d,
    })];
    if simulate {
        let sim = if status.is_some() {
            super::probe::run(
                "apt-get",
                &["-s", "-o", "Debug::NoLocking=true", "dist-upgrade"],
            )
        } else {
            Probe::Missing
        };
        out.push(security_updates(&sim, lists_age(host, SystemTime::now())));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Package: bash\nStatus: install ok installed\nVersion: 5.2\n\n\
        Package: unattended-upgrades\nStatus: install ok installed\nVersion: 2.9\n";

    fn inputs<'a>(
        status: Option<&'a str>,
        dump: &'a Probe,
        conf_d: &'a [(String, String)],
    ) -> UpgradeInputs<'a> {
        UpgradeInputs {
            dpkg_status: status,
            apt_dump: dump,
            conf_d,
        }
    }

    #[test]
    fn unattended_upgrades_installed_and_enabled() {
        let dump = Probe::Output("APT::Periodic::Update-Package-Lists \"1\";\nAPT::Periodic::Unattended-Upgrade \"1\";\n".into());
        let c = unattended_upgrades(&inputs(Some(STATUS), &dump, &[]));
        assert_eq!(c.status, Status::Ok, "{c:?}");
        let off = Probe::Output("APT::Periodic::Unattended-Upgrade \"0\";\n".into());
        let c = unattended_upgrades(&inputs(Some(STATUS), &off, &[]));
        assert_eq!(c.status, Status::Warn);
        assert!(c.fix.unwrap().contains("dpkg-reconfigure"));
        // Not installed (removed, config left behind).
        let removed = "Package: unattended-upgrades\nStatus: deinstall ok config-files\n";
        let c = unattended_upgrades(&inputs(Some(removed), &dump, &[]));
        assert!(c.detail.contains("not installed"), "{c:?}");
        assert!(
            c.fix
                .unwrap()
                .starts_with("apt install unattended-upgrades")
        );
        // No dpkg at all: skipped, not a warning.
        assert_eq!(
            unattended_upgrades(&inputs(None, &dump, &[])).status,
            Status::Ok
        );
    }

    #[test]
    fn apt_conf_d_is_read_when_apt_config_cannot_run() {
        let conf = vec![
            (
                "20auto-upgrades".to_string(),
                "// comment\nAPT::Periodic::Unattended-Upgrade \"1\";\n".to_string(),
            ),
            (
                "99local".to_string(),
                "APT::Periodic::Unattended-Upgrade \"0\"; // off\n".to_string(),
            ),
        ];
        let c = unattended_upgrades(&inputs(Some(STATUS), &Probe::Missing, &conf));
        assert_eq!(c.status, Status::Warn, "the last file wins: {c:?}");
        let c = unattended_upgrades(&inputs(Some(STATUS), &Probe::Missing, &conf[..1]));
        assert_eq!(c.status, Status::Ok, "{c:?}");
        let c = unattended_upgrades(&inputs(Some(STATUS), &Probe::Missing, &[]));
        assert!(c.detail.contains("not enabled"), "{c:?}");
    }

    const SIM: &str = "NOTE: This is only a simulation!\n\
        Inst base-files [12.4+deb12u11] (12.4+deb12u15 Debian:12.15/oldstable [amd64])\n\
        Inst libgcrypt20 [1.10.1-3] (1.10.1-3+deb12u1 Debian:12.15/oldstable, Debian-Security:12/oldstable-security [amd64]) []\n\
        Inst openssl [3.0.1] (3.0.2 Ubuntu:22.04/jammy-security [amd64])\n\
        Conf base-files (12.4+deb12u15 Debian:12.15/oldstable [amd64])\n";

    #[test]
    fn security_updates_are_counted_from_the_simulation() {
        assert_eq!(pending_security(SIM), ["libgcrypt20", "openssl"]);
        let day = Duration::from_secs(86_400);
        let c = security_updates(&Probe::Output(SIM.into()), Some(day));
        assert_eq!(c.status, Status::Warn);
        assert!(c.detail.starts_with("2 pending"), "{c:?}");
        assert!(c.fix.unwrap().contains("apt-get upgrade"));
        let none = Probe::Output("Inst base-files [1] (2 Debian:12/stable [amd64])\n".into());
        assert_eq!(security_updates(&none, Some(day)).status, Status::Ok);
        let c = security_updates(&none, Some(day * 30));
        assert_eq!(c.status, Status::Warn, "stale lists: {c:?}");
        assert!(c.detail.contains("30 days old"));
        assert_eq!(
            security_updates(&none, None).fix.as_deref(),
            Some("apt-get update")
        );
        assert_eq!(
            security_updates(&Probe::Missing, Some(day)).status,
            Status::Ok
        );
    }

    #[test]
    fn dpkg_status_stanzas() {
        assert!(dpkg_installed(STATUS, "bash"));
        assert!(!dpkg_installed(STATUS, "ssh"));
    }
}
