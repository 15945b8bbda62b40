//! Checklist "confinement" and "monitoring/audit" rows that are not about
//! mvault itself: SELinux where AppArmor is absent, whether the training
//! Python (`--python`) runs in a virtual environment, and whether auditd
//! runs with watch rules (docs/examples/mvault.rules).

use std::fs;
use std::path::Path;

use super::probe::Probe;
use super::{Check, Host, Status, check};

/// Whether AppArmor is enabled in the kernel.
pub fn apparmor_enabled(host: &Host) -> bool {
    fs::read_to_string(host.sys.join("module/apparmor/parameters/enabled"))
        .is_ok_and(|v| v.trim() == "Y")
}

/// SELinux state, looked at only where AppArmor is absent.
pub fn selinux(host: &Host) -> Check {
    if apparmor_enabled(host) {
        return check("selinux", Status::Ok, "not needed: AppArmor is enabled");
    }
    let configured = fs::read_to_string(host.etc.join("selinux/config"))
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.trim()
                    .strip_prefix("SELINUX=")
                    .map(|v| v.trim().to_string())
            })
        });
    let boot = configured.as_deref().map_or(String::new(), |c| {
        format!(" (SELINUX={c} in /etc/selinux/config)")
    });
    match fs::read_to_string(host.sys.join("fs/selinux/enforce")).map(|v| v.trim().to_string()) {
        Ok(v) if v == "1" => check("selinux", Status::Ok, format!("enforcing{boot}")),
        Ok(_) => check("selinux", Status::Warn, format!("permissive: denials are only logged{boot}"))
            .fix("setenforce 1 and set SELINUX=enforcing in /etc/selinux/config"),
        Err(_) => check(
            "selinux",
            Status::Warn,
            "neither AppArmor nor SELinux is active: nothing confines the training job or mvault",
        )
        .fix("on Debian: apt install apparmor apparmor-utils, boot with apparmor=1 security=apparmor, and load docs/examples/apparmor/usr.local.bin.mvault"),
    }
}

/// What `PYTHON -c` printed: `sys.prefix`, then `sys.base_prefix`.
pub fn python_env(python: &Path, probe: &Probe) -> Check {
    let name = format!("python {}", python.display());
    let fix = "train from a virtual environment owned by the training user: python3 -m venv ~/venv && ~/venv/bin/pip install torch, then run ~/venv/bin/python";
    let out = match probe {
        Probe::Missing => {
            return check(name, Status::Warn, "not found")
                .fix("give the path of the Python that runs training");
        }
        Probe::Failed(e) => {
            return check(name, Status::Warn, format!("cannot run it: {e}"))
                .fix("give the path of the Python that runs training");
        }
        Probe::Output(out) => out,
    };
    let mut lines = out.lines().map(str::trim);
    let (Some(prefix), Some(base)) = (lines.next(), lines.next()) else {
        return check(name, Status::Warn, "printed no sys.prefix").fix(fix);
    };
    if prefix != base {
        return check(
            name,
            Status::Ok,
            format!("virtual environment {prefix} (base {base})"),
        );
    }
    if Path::new(prefix).join("conda-meta").is_dir() && prefix.contains("/envs/") {
        return check(name, Status::Ok, format!("conda environment {prefix}"));
    }
    check(
        name,
        Status::Warn,
        format!("not in a virtual environment (sys.prefix {prefix}): packages come from the system-wide site-packages, shared with every user and job"),
    )
    .fix(fix)
}

/// The script `python_env` runs.
pub const PYTHON_PROBE: &str =
    "import sys; print(sys.prefix); print(getattr(sys, 'base_prefix', sys.prefix))";

/// auditd running (a process named `auditd`) and its rule files' `-w` watches.
pub fn auditd(host: &Host) -> Check {
    let running = fs::read_dir(&host.proc)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .any(|e| fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == "auditd"));
    let mut rule_files: Vec<_> = fs::read_dir(host.etc.join("audit/rules.d"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "rules"))
        .collect();
    rule_files.push(host.etc.join("audit/audit.rules"));
    let watches = rule_files
        .iter()
        .filter_map(|p| fs::read_to_string(p).ok())
        .flat_map(|t| t.lines().map(str::to_string).collect::<Vec<_>>())
        .filter(|l| {
            let l = l.trim_start();
            l.starts_with("-w ") || l.contains("-F path=") || l.contains("-F dir=")
        })
        .count();
    let fix = "apt install auditd; cp docs/examples/mvault.rules /etc/audit/rules.d/ (edit the vault folders) && augenrules --load";
    match (running, watches) {
        (true, n) if n > 0 => check("auditd", Status::Ok, format!("running; {n} file watch rule(s) in /etc/audit")),
        (true, _) => check("auditd", Status::Warn, "running, but no file watch rules: reads of identities and vaults are not recorded").fix(fix),
        (false, _) => check(
            "auditd",
            Status::Warn,
            "not running: no kernel record of who read identity files and model files (mvault's --audit-log covers only its mounts)",
        )
        .fix(fix),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    #[test]
    fn selinux_only_matters_without_apparmor() {
        let dir = tempfile::tempdir().unwrap();
        let host = Host::under(dir.path());
        let c = selinux(&host);
        assert_eq!(c.status, Status::Warn);
        assert!(c.detail.contains("neither"), "{c:?}");
        write(&host.etc.join("selinux/config"), "SELINUX=enforcing\n");
        write(&host.sys.join("fs/selinux/enforce"), "0\n");
        let c = selinux(&host);
        assert!(
            c.detail.contains("permissive") && c.detail.contains("SELINUX=enforcing"),
            "{c:?}"
        );
        assert!(c.fix.unwrap().contains("setenforce 1"));
        write(&host.sys.join("fs/selinux/enforce"), "1\n");
        assert_eq!(selinux(&host).status, Status::Ok);
        write(&host.sys.join("fs/selinux/enforce"), "0\n");
        write(&host.sys.join("module/apparmor/parameters/enabled"), "Y\n");
        assert_eq!(selinux(&host).status, Status::Ok);
    }

    #[test]
    fn python_virtual_environments() {
        let py = Path::new("/opt/venv/bin/python");
        let venv = Probe::Output("/opt/venv\n/usr\n".into());
        assert_eq!(python_env(py, &venv).status, Status::Ok);
        let system = Probe::Output("/usr\n/usr\n".into());
        let c = python_env(py, &system);
        assert_eq!(c.status, Status::Warn);
        assert!(c.fix.unwrap().contains("python3 -m venv"));
        assert_eq!(python_env(py, &Probe::Missing).status, Status::Warn);
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("envs/torch");
        fs::create_dir_all(env.join("conda-meta")).unwrap();
        let conda = Probe::Output(format!("{0}\n{0}\n", env.display()));
        assert_eq!(python_env(py, &conda).status, Status::Ok);
    }

    #[test]
    fn auditd_process_and_watch_rules() {
        let dir = tempfile::tempdir().unwrap();
        let host = Host::under(dir.path());
        write(&host.proc.join("1/comm"), "systemd\n");
        assert!(auditd(&host).detail.starts_with("not running"));
        write(&host.proc.join("412/comm"), "auditd\n");
        let c = auditd(&host);
        assert_eq!(c.status, Status::Warn);
        assert!(c.fix.unwrap().contains("mvault.rules"));
        write(
            &host.etc.join("audit/rules.d/mvault.rules"),
            "-D\n-w /etc/mvault -p r -k mvault-identity\n",
        );
        let c = auditd(&host);
        assert_eq!(c.status, Status::Ok, "{c:?}");
        assert!(c.detail.contains("1 file watch"));
    }
}
