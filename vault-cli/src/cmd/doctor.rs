//! `mvault doctor`: checks the host against the practices mvault relies on
//! and says how to fix what falls short.
//!
//! Every check reads plain files under `/proc`, `/sys` and `/etc` (through a
//! [`Host`] whose roots unit tests point at fake trees) and never changes
//! anything. A check that fails means secrets are exposed right now (a key
//! file others can read); a warning means a layer of defence is missing.
//!
//! The rows of the Debian hardening checklist for PyTorch hosts live in
//! submodules ([`updates`], [`ssh`], [`ports`], [`files`], [`confine`]), as
//! pure functions over a [`Host`] and captured command output ([`probe`]);
//! [`profile`] groups them under the checklist's headings.

mod confine;
mod disk;
mod files;
mod ports;
mod probe;
mod profile;
mod ssh;
mod updates;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;
use serde_json::json;

use crate::cli::DoctorArgs;
use crate::exit::Exit;
use crate::key_args::default_identity_path;
#[cfg(test)]
use disk::{crypt_layer, unescape_octal};
use disk::{storage, swap};

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// One row of the report.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub check: String,
    pub status: Status,
    pub detail: String,
    pub fix: Option<String>,
    /// The checklist heading (with `--profile` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heading: Option<&'static str>,
}

fn check(name: impl Into<String>, status: Status, detail: impl Into<String>) -> Check {
    Check {
        check: name.into(),
        status,
        detail: detail.into(),
        fix: None,
        heading: None,
    }
}

impl Check {
    fn fix(mut self, fix: impl Into<String>) -> Check {
        self.fix = Some(fix.into());
        self
    }
}

/// Where the host's kernel interfaces live (`/` on a real host).
pub struct Host {
    pub proc: PathBuf,
    pub sys: PathBuf,
    pub etc: PathBuf,
    pub dev: PathBuf,
    pub var: PathBuf,
}

impl Host {
    /// A host whose `/proc`, `/sys`, `/etc`, `/dev` and `/var` are under `root`.
    #[cfg(test)]
    pub fn under(root: &Path) -> Host {
        Host {
            proc: root.join("proc"),
            sys: root.join("sys"),
            etc: root.join("etc"),
            dev: root.join("dev"),
            var: root.join("var"),
        }
    }
}

impl Default for Host {
    fn default() -> Self {
        Host {
            proc: "/proc".into(),
            sys: "/sys".into(),
            etc: "/etc".into(),
            dev: "/dev".into(),
            var: "/var".into(),
        }
    }
}

pub fn run(args: DoctorArgs) -> Result<Exit> {
    let host = Host::default();
    // $MVAULT_IDENTITY, the XDG default behind it, and any -i.
    let mut identities = Vec::new();
    for path in default_identity_path()
        .into_iter()
        .chain(xdg_identity_path())
        .chain(args.identities.iter().cloned())
    {
        if !identities.contains(&path) {
            identities.push(path);
        }
    }
    let mut paths = args.paths.clone();
    if paths.is_empty() {
        paths.extend(
            identities
                .iter()
                .filter(|p| p.exists())
                .map(|p| crate::output::parent_dir(p).to_path_buf()),
        );
        paths.push(PathBuf::from("."));
    }
    paths.dedup();

    let mut checks = Vec::new();
    for identity in &identities {
        checks.push(identity_file(identity));
    }
    checks.push(swap(&host));
    for path in &paths {
        checks.push(storage(&host, path));
        checks.push(leftovers(path));
    }
    checks.push(running_as_root(rustix::process::geteuid().as_raw()));
    checks.push(fuse_conf(&host));
    checks.push(ptrace_scope(&host));
    checks.push(apparmor(&host));
    checks.push(core_dumps(&host, core_limit()));
    checks.push(dev_fuse(&host));
    checks.push(fusermount());
    checklist_checks(&host, &args, &mut checks);

    let worst = checks.iter().map(|c| c.status).max().unwrap_or(Status::Ok);
    if args.profile.is_some() {
        profile::group(&mut checks);
    }
    if args.json {
        let items = checks.iter().map(|c| json!(c)).collect();
        let mut report = crate::json::report("doctor", worst != Status::Fail, items, vec![]);
        if let Some(p) = args.profile {
            let mut fields = serde_json::Map::new();
            fields.insert("profile".into(), json!(p.name()));
            report = crate::json::with_fields(report, fields);
        }
        crate::json::print(&report);
    } else if args.profile.is_some() {
        profile::print(&checks);
    } else {
        print_table(&checks);
    }
    Ok(if worst == Status::Fail {
        Exit::HostUnsafe
    } else {
        Exit::Ok
    })
}

/// The rows of the hardening checklist: updates, SSH, training ports,
/// model files under the explicit `--path`s, SELinux, auditd, `--python`.
/// Counting pending security updates simulates an upgrade (seconds), so
/// only `--profile pytorch-host` does it.
fn checklist_checks(host: &Host, args: &DoctorArgs, checks: &mut Vec<Check>) {
    checks.extend(updates::checks(host, args.profile.is_some()));
    checks.extend(ssh::checks(&probe::run("sshd", &["-T"]), || {
        ssh::config_files(host)
    }));
    checks.extend(ports::checks(host, &args.peers));
    let me = rustix::process::geteuid().as_raw();
    let passwd = fs::read_to_string(host.etc.join("passwd")).unwrap_or_default();
    let my_name = files::user_name(&passwd, me);
    for path in &args.paths {
        let (found, cut) = files::scan(path, me);
        checks.push(files::model_files(path, &found, cut, me, &my_name));
    }
    checks.push(confine::auditd(host));
    checks.push(confine::selinux(host));
    if let Some(python) = &args.python {
        let out = probe::run_path(python, &["-c", confine::PYTHON_PROBE]);
        checks.push(confine::python_env(python, &out));
    }
}

/// `$XDG_CONFIG_HOME/mvault/identity.txt` (or `~/.config/...`), the
/// default identity when `$MVAULT_IDENTITY` is not set.
fn xdg_identity_path() -> Option<PathBuf> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(config.join("mvault").join("identity.txt"))
}

/// Prints the checks as an aligned table; the fix goes on its own line
/// under the row it belongs to.
fn print_table(checks: &[Check]) {
    let name_width = checks
        .iter()
        .map(|c| c.check.len())
        .max()
        .unwrap_or(5)
        .max(5);
    println!("{:<name_width$}  STATUS  DETAIL / FIX", "CHECK");
    for c in checks {
        print_row(c, name_width);
    }
    print_totals(checks);
}

/// One row, with its fix on a line of its own.
fn print_row(c: &Check, name_width: usize) {
    println!(
        "{:<name_width$}  {:<6}  {}",
        c.check,
        c.status.label(),
        c.detail
    );
    if let Some(fix) = &c.fix {
        println!("{:<name_width$}  {:<6}  fix: {fix}", "", "");
    }
}

/// The closing line: failures, warnings, checks.
fn print_totals(checks: &[Check]) {
    let fails = checks.iter().filter(|c| c.status == Status::Fail).count();
    let warns = checks.iter().filter(|c| c.status == Status::Warn).count();
    println!(
        "{fails} failed, {warns} warning(s), {} checks",
        checks.len()
    );
}

/// A key file must be private to its owner, who must be us, and its folder
/// must not let others replace it.
pub fn identity_file(path: &Path) -> Check {
    let name = format!("identity {}", path.display());
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return check(name, Status::Ok, "no such file (nothing to protect)");
        }
        Err(e) => {
            return check(name, Status::Warn, format!("cannot stat: {e}"))
                .fix(format!("check the permissions of {}", path.display()));
        }
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return check(
            name,
            Status::Fail,
            format!("mode {mode:03o}: readable or writable by other users"),
        )
        .fix(format!("chmod 600 {}", path.display()));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return check(
            name,
            Status::Fail,
            format!("owned by uid {}, not by you (uid {me})", meta.uid()),
        )
        .fix(format!("chown {me} {}", path.display()));
    }
    let dir = crate::output::parent_dir(path);
    if let Ok(dmeta) = fs::metadata(dir) {
        let dmode = dmeta.permissions().mode() & 0o7777;
        // Writable by others without the sticky bit: the file can be replaced.
        if dmode & 0o022 != 0 && dmode & 0o1000 == 0 {
            return check(
                name,
                Status::Warn,
                format!(
                    "mode {mode:03o}, but its folder {} is writable by others (mode {dmode:03o})",
                    dir.display()
                ),
            )
            .fix(format!("chmod go-w {}", dir.display()));
        }
    }
    check(name, Status::Ok, format!("mode {mode:03o}, owned by you"))
}

/// Temporary files (`.NAME.RANDOM.mvault-tmp`) left in a folder by runs
/// that were killed; they may hold partial plaintext.
pub fn leftovers(dir: &Path) -> Check {
    let name = format!("leftovers {}", dir.display());
    let found: Vec<String> = match fs::read_dir(dir) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.') && n.ends_with(".mvault-tmp"))
            .collect(),
        Err(e) => return check(name, Status::Warn, format!("cannot list: {e}")),
    };
    if found.is_empty() {
        return check(name, Status::Ok, "no temporary files from interrupted runs");
    }
    check(
        name,
        Status::Warn,
        format!(
            "{} temporary file(s) from interrupted runs (may hold partial plaintext): {}",
            found.len(),
            found.join(", ")
        ),
    )
    .fix(format!(
        "when no mvault is running there: find {} -maxdepth 1 -name '.*.mvault-tmp' -delete",
        dir.display()
    ))
}

pub fn running_as_root(euid: u32) -> Check {
    if euid == 0 {
        check(
            "user",
            Status::Warn,
            "running as root: a mistake in a mount policy or a key file reaches everything",
        )
        .fix("run mvault as a dedicated unprivileged user (see docs/examples/systemd/)")
    } else {
        check("user", Status::Ok, format!("uid {euid}, not root"))
    }
}

/// `user_allow_other` lets non-root mounts serve other users; then only
/// mvault's policy, not the kernel, keeps them out.
pub fn fuse_conf(host: &Host) -> Check {
    let path = host.etc.join("fuse.conf");
    let text = fs::read_to_string(&path).unwrap_or_default();
    let enabled = text
        .lines()
        .any(|l| l.split('#').next().unwrap_or("").trim() == "user_allow_other");
    if enabled {
        check(
            "fuse.conf",
            Status::Warn,
            "user_allow_other is set: a user's mount may serve other users, guarded only by mvault's policy flags",
        )
        .fix("remove user_allow_other from /etc/fuse.conf unless mounts must serve other users")
    } else {
        check(
            "fuse.conf",
            Status::Ok,
            "user_allow_other not set: the kernel keeps other users out of a user's mounts",
        )
    }
}

/// Yama keeps same-uid processes from attaching a debugger to mvault.
pub fn ptrace_scope(host: &Host) -> Check {
    match fs::read_to_string(host.proc.join("sys/kernel/yama/ptrace_scope")) {
        Err(_) => check(
            "ptrace",
            Status::Warn,
            "Yama is not active: any process of the same user may ptrace mvault seal/open (mount makes itself undumpable)",
        )
        .fix("enable the Yama LSM (CONFIG_SECURITY_YAMA, lsm=...,yama) and set kernel.yama.ptrace_scope=1"),
        Ok(v) => match v.trim() {
            "0" => check(
                "ptrace",
                Status::Warn,
                "kernel.yama.ptrace_scope=0: any process of the same user may read mvault's memory",
            )
            .fix("sysctl -w kernel.yama.ptrace_scope=1 (persist in /etc/sysctl.d/10-ptrace.conf)"),
            level => check(
                "ptrace",
                Status::Ok,
                format!("kernel.yama.ptrace_scope={level}"),
            ),
        },
    }
}

/// A mandatory access control layer can confine the mount daemon.
pub fn apparmor(host: &Host) -> Check {
    if confine::apparmor_enabled(host) {
        let profiles = fs::read_to_string(host.sys.join("kernel/security/apparmor/profiles"))
            .unwrap_or_default();
        return match profiles.lines().find(|l| l.contains("mvault")) {
            Some(line) => check("apparmor", Status::Ok, format!("enabled; {line}")),
            None => check(
                "apparmor",
                Status::Warn,
                "enabled, but no mvault profile is loaded",
            )
            .fix("install docs/examples/apparmor/usr.local.bin.mvault in /etc/apparmor.d/ and run apparmor_parser -r on it"),
        };
    }
    if fs::read_to_string(host.sys.join("fs/selinux/enforce")).is_ok_and(|v| v.trim() == "1") {
        return check("apparmor", Status::Ok, "not in use; SELinux is enforcing");
    }
    check(
        "apparmor",
        Status::Warn,
        "AppArmor is not enabled: nothing confines what the mount daemon may read or run",
    )
    .fix("boot with apparmor=1 security=apparmor and load docs/examples/apparmor/usr.local.bin.mvault")
}

/// RLIMIT_CORE of this process, soft limit (None = unlimited).
fn core_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Core).current
}

/// A core dump of seal/open would hold keys and plaintext.
pub fn core_dumps(host: &Host, soft_limit: Option<u64>) -> Check {
    let pattern = fs::read_to_string(host.proc.join("sys/kernel/core_pattern"))
        .map(|p| p.trim().to_string())
        .unwrap_or_default();
    let sink = if let Some(handler) = pattern.strip_prefix('|') {
        format!(
            "piped to {}",
            handler.split_whitespace().next().unwrap_or("?")
        )
    } else {
        format!("written as {pattern:?}")
    };
    match soft_limit {
        Some(0) => check(
            "core dumps",
            Status::Ok,
            format!("off for this session (ulimit -c 0); pattern {sink}"),
        ),
        limit => check(
            "core dumps",
            Status::Warn,
            format!(
                "on (ulimit -c {}), {sink}: a crash of seal/open would store keys and plaintext",
                limit.map_or("unlimited".to_string(), |l| l.to_string())
            ),
        )
        .fix("ulimit -c 0 in the shell or LimitCORE=0 in the unit (mvault mount/run set it themselves); with systemd-coredump also Storage=none in /etc/systemd/coredump.conf"),
    }
}

/// Mounts need /dev/fuse.
pub fn dev_fuse(host: &Host) -> Check {
    let path = host.dev.join("fuse");
    match fs::metadata(&path) {
        Ok(m) if m.file_type().is_char_device() => {
            match fs::OpenOptions::new().read(true).write(true).open(&path) {
                // mvault opens /dev/fuse itself before falling back to
                // fusermount3, so a 0600 node stops unprivileged mounts.
                Ok(_) if m.permissions().mode() & 0o006 != 0o006 => check(
                    "/dev/fuse",
                    Status::Warn,
                    format!(
                        "mode {:03o}: only its owner can open it, so mvault mount/run fail for other users",
                        m.permissions().mode() & 0o777
                    ),
                )
                .fix("chmod 666 /dev/fuse (the udev default: KERNEL==\"fuse\", MODE=\"0666\")"),
                Ok(_) => check("/dev/fuse", Status::Ok, "present and usable"),
                Err(e) => check(
                    "/dev/fuse",
                    Status::Warn,
                    format!("present but cannot be opened: {e}"),
                )
                .fix(
                    "mvault mount/run need access to /dev/fuse (in containers: --device /dev/fuse)",
                ),
            }
        }
        _ => check(
            "/dev/fuse",
            Status::Warn,
            "missing: mvault mount/run cannot work",
        )
        .fix("modprobe fuse (in containers: --device /dev/fuse --cap-add SYS_ADMIN)"),
    }
}

/// Unprivileged mounts and unmounts go through fusermount3.
pub fn fusermount() -> Check {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("fusermount3"))
            .find(|p| {
                fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
    });
    match found {
        Some(p) => check("fusermount3", Status::Ok, p.display().to_string()),
        None => check(
            "fusermount3",
            Status::Warn,
            "not on PATH: unprivileged mounts and `mvault umount` need it",
        )
        .fix("apt install fuse3 (or dnf install fuse3)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn fake() -> (tempfile::TempDir, Host) {
        let dir = tempfile::tempdir().unwrap();
        let host = Host::under(dir.path());
        for d in [&host.proc, &host.sys, &host.etc, &host.dev] {
            fs::create_dir_all(d).unwrap();
        }
        (dir, host)
    }

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn dm(host: &Host, name: &str, uuid: &str, slaves: &[&str]) {
        let base = host.sys.join("class/block").join(name);
        write(&base.join("dm/uuid"), &format!("{uuid}\n"));
        write(&base.join("dm/name"), &format!("{name}-mapped\n"));
        fs::create_dir_all(base.join("slaves")).unwrap();
        for s in slaves {
            fs::create_dir_all(host.sys.join("class/block").join(s)).unwrap();
            symlink(
                host.sys.join("class/block").join(s),
                base.join("slaves").join(s),
            )
            .unwrap();
        }
    }

    #[test]
    fn crypt_layer_is_found_directly_and_below_lvm() {
        let (_d, host) = fake();
        dm(&host, "dm-0", "CRYPT-LUKS2-abc-luks", &["vda2"]);
        dm(&host, "dm-1", "LVM-xyz", &["dm-0"]);
        dm(&host, "dm-2", "LVM-plain", &["vdb1"]);
        assert_eq!(crypt_layer(&host, "dm-0").as_deref(), Some("dm-0-mapped"));
        assert_eq!(crypt_layer(&host, "dm-1").as_deref(), Some("dm-0-mapped"));
        assert_eq!(crypt_layer(&host, "dm-2"), None);
        assert_eq!(crypt_layer(&host, "vda1"), None);
    }

    #[test]
    fn no_swap_is_ok_and_unknown_swap_warns() {
        let (_d, host) = fake();
        write(
            &host.proc.join("swaps"),
            "Filename\tType\tSize\tUsed\tPriority\n",
        );
        let c = swap(&host);
        assert_eq!((c.status, c.detail.as_str()), (Status::Ok, "no swap"));
        // /proc/swaps naming a node that is not a block device.
        write(
            &host.proc.join("swaps"),
            "Filename\tType\tSize\tUsed\tPriority\n/dev/null  partition 1 0 -2\n",
        );
        let c = swap(&host);
        assert_eq!(c.status, Status::Warn, "{c:?}");
        assert!(c.fix.unwrap().contains("crypttab"));
    }

    #[test]
    fn yama_levels() {
        let (_d, host) = fake();
        assert_eq!(ptrace_scope(&host).status, Status::Warn);
        write(&host.proc.join("sys/kernel/yama/ptrace_scope"), "0\n");
        assert_eq!(ptrace_scope(&host).status, Status::Warn);
        write(&host.proc.join("sys/kernel/yama/ptrace_scope"), "1\n");
        assert_eq!(ptrace_scope(&host).status, Status::Ok);
    }

    #[test]
    fn fuse_conf_user_allow_other() {
        let (_d, host) = fake();
        assert_eq!(fuse_conf(&host).status, Status::Ok);
        write(
            &host.etc.join("fuse.conf"),
            "# user_allow_other\nmount_max = 1000\n",
        );
        assert_eq!(fuse_conf(&host).status, Status::Ok);
        write(&host.etc.join("fuse.conf"), "user_allow_other\n");
        assert_eq!(fuse_conf(&host).status, Status::Warn);
    }

    #[test]
    fn apparmor_states() {
        let (_d, host) = fake();
        assert_eq!(apparmor(&host).status, Status::Warn);
        write(&host.sys.join("module/apparmor/parameters/enabled"), "Y\n");
        let c = apparmor(&host);
        assert_eq!(c.status, Status::Warn);
        assert!(c.detail.contains("no mvault profile"));
        write(
            &host.sys.join("kernel/security/apparmor/profiles"),
            "/usr/local/bin/mvault (enforce)\n",
        );
        assert_eq!(apparmor(&host).status, Status::Ok);
    }

    #[test]
    fn core_dump_limits() {
        let (_d, host) = fake();
        write(
            &host.proc.join("sys/kernel/core_pattern"),
            "|/usr/lib/systemd/systemd-coredump %P %u %g %s %t %c %h\n",
        );
        let c = core_dumps(&host, Some(0));
        assert_eq!(c.status, Status::Ok);
        assert!(c.detail.contains("systemd-coredump"), "{c:?}");
        let c = core_dumps(&host, None);
        assert_eq!(c.status, Status::Warn);
        assert!(c.detail.contains("unlimited"));
        assert!(c.fix.unwrap().contains("LimitCORE=0"));
    }

    #[test]
    fn root_is_a_warning() {
        assert_eq!(running_as_root(0).status, Status::Warn);
        assert_eq!(running_as_root(1000).status, Status::Ok);
    }

    #[test]
    fn octal_escapes() {
        assert_eq!(unescape_octal(r"/mnt/my\040disk"), "/mnt/my disk");
        assert_eq!(unescape_octal(r"plain\"), r"plain\");
    }
}
