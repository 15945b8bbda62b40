//! `mvault doctor`: runs on the real host, parses `--json`, and checks the
//! rows these tests can control (identity files, core dump limit, storage).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use crate::util::*;
use serde_json::Value;

/// `mvault doctor` exits 8 when a check fails.
const EXIT_HOST_UNSAFE: i32 = 8;

/// Runs `mvault doctor --json ARGS...`; returns the exit code and report.
fn doctor_json(env: &Env, args: &[&std::ffi::OsStr]) -> (Option<i32>, Value) {
    let out = env
        .cmd()
        .args(["doctor", "--json"])
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("doctor --json prints JSON");
    (out.status.code(), report)
}

fn row<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no {name:?} row in {report:#}"))
}

#[test]
fn json_report_has_every_check_with_a_status() {
    let env = Env::new();
    env.keygen();
    let (code, report) = doctor_json(&env, &[]);
    let checks = report["items"].as_array().unwrap();
    for name in [
        "swap",
        "user",
        "fuse.conf",
        "ptrace",
        "apparmor",
        "core dumps",
        "/dev/fuse",
        "fusermount3",
    ] {
        row(&report, name);
    }
    assert!(
        checks
            .iter()
            .any(|c| c["check"].as_str().unwrap().starts_with("storage "))
    );
    for c in checks {
        let status = c["status"].as_str().unwrap();
        assert!(["ok", "warn", "fail"].contains(&status), "{c}");
        assert!(!c["detail"].as_str().unwrap().is_empty(), "{c}");
        if status != "ok" {
            assert!(c["fix"].is_string(), "every problem comes with a fix: {c}");
        }
    }
    // A private identity of our own: nothing fails, so exit 0.
    let id = row(&report, &format!("identity {}", env.identity().display()));
    assert_eq!(id["status"], "ok", "{id}");
    assert_eq!(report["ok"], true);
    assert_eq!(code, Some(0));
}

#[test]
fn world_readable_identity_fails_with_the_chmod_fix() {
    let env = Env::new();
    env.keygen();
    fs::set_permissions(env.identity(), fs::Permissions::from_mode(0o644)).unwrap();
    let (code, report) = doctor_json(&env, &[]);
    assert_eq!(code, Some(EXIT_HOST_UNSAFE));
    assert_eq!(report["ok"], false);
    let id = row(&report, &format!("identity {}", env.identity().display()));
    assert_eq!(id["status"], "fail");
    assert_eq!(
        id["fix"].as_str().unwrap(),
        format!("chmod 600 {}", env.identity().display())
    );

    // The human table shows the same, with the fix under the row.
    let out = env.cmd().arg("doctor").assert().code(EXIT_HOST_UNSAFE);
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(text.contains("fail"), "{text}");
    assert!(
        text.contains(&format!("fix: chmod 600 {}", env.identity().display())),
        "{text}"
    );
    // No key material in the report.
    let secret = fs::read_to_string(env.identity()).unwrap();
    let secret = secret
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap();
    assert!(!text.contains(secret));

    fs::set_permissions(env.identity(), fs::Permissions::from_mode(0o600)).unwrap();
    let (code, _) = doctor_json(&env, &[]);
    assert_eq!(code, Some(0));
}

#[test]
fn group_readable_extra_identity_and_foreign_owner_fail() {
    let env = Env::new();
    env.keygen();
    let extra = env.path("extra.txt");
    env.keygen_at(&extra);
    fs::set_permissions(&extra, fs::Permissions::from_mode(0o640)).unwrap();
    let (code, report) = doctor_json(&env, &["-i".as_ref(), extra.as_ref()]);
    assert_eq!(code, Some(EXIT_HOST_UNSAFE));
    let r = row(&report, &format!("identity {}", extra.display()));
    assert_eq!(r["status"], "fail");
    assert!(r["detail"].as_str().unwrap().contains("640"), "{r}");

    // Private, but owned by someone else (we are root in CI; skip otherwise).
    if fs::metadata("/proc/self").unwrap().uid() == 0 {
        fs::set_permissions(&extra, fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::chown(&extra, Some(65534), None).unwrap();
        let (code, report) = doctor_json(&env, &["-i".as_ref(), extra.as_ref()]);
        let r = row(&report, &format!("identity {}", extra.display()));
        assert_eq!(r["status"], "fail", "{r}");
        assert!(r["fix"].as_str().unwrap().starts_with("chown "), "{r}");
        assert_eq!(code, Some(EXIT_HOST_UNSAFE));
    }
}

#[test]
fn core_dump_limit_is_read_from_the_process() {
    let env = Env::new();
    for (limit, status) in [("0", "ok"), ("unlimited", "warn")] {
        let mut cmd = assert_cmd::Command::new("bash");
        cmd.current_dir(env.dir.path())
            .env("MVAULT_IDENTITY", env.identity())
            .arg("-c")
            .arg(format!("ulimit -c {limit} && exec \"$0\" doctor --json",))
            .arg(assert_cmd::cargo::cargo_bin("mvault"));
        let out = cmd.output().unwrap();
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        let r = row(&report, "core dumps");
        assert_eq!(r["status"], status, "ulimit -c {limit}: {r}");
    }
}

#[test]
fn storage_on_tmpfs_is_reported_as_in_memory() {
    let env = Env::new();
    let (_, report) = doctor_json(
        &env,
        &[
            "--path".as_ref(),
            "/dev/shm".as_ref(),
            "--path".as_ref(),
            env.dir.path().as_ref(),
        ],
    );
    let shm = row(&report, "storage /dev/shm");
    assert!(shm["detail"].as_str().unwrap().contains("tmpfs"), "{shm}");
    let here = row(&report, &format!("storage {}", env.dir.path().display()));
    assert!(["ok", "warn"].contains(&here["status"].as_str().unwrap()));
}

#[test]
fn temporary_files_of_killed_runs_are_reported() {
    let env = Env::new();
    env.keygen();
    let here = env.dir.path().as_os_str();
    let (_, report) = doctor_json(&env, &["--path".as_ref(), here]);
    let name = format!("leftovers {}", env.dir.path().display());
    assert_eq!(row(&report, &name)["status"], "ok");
    fs::write(env.path(".ckpt.bin.Ab12Cd.mvault-tmp"), b"partial").unwrap();
    let (code, report) = doctor_json(&env, &["--path".as_ref(), here]);
    let r = row(&report, &name);
    assert_eq!(r["status"], "warn", "{r}");
    assert!(
        r["detail"]
            .as_str()
            .unwrap()
            .contains(".ckpt.bin.Ab12Cd.mvault-tmp")
    );
    assert!(r["fix"].as_str().unwrap().contains("-delete"));
    assert_eq!(code, Some(0), "a warning does not fail");
}

#[test]
fn the_xdg_default_is_checked_besides_mvault_identity() {
    let env = Env::new();
    env.keygen(); // at $MVAULT_IDENTITY
    let xdg = env.path("config/mvault/identity.txt");
    env.keygen_at(&xdg);
    fs::set_permissions(&xdg, fs::Permissions::from_mode(0o604)).unwrap();
    let (code, report) = doctor_json(&env, &[]);
    assert_eq!(code, Some(EXIT_HOST_UNSAFE));
    let r = row(&report, &format!("identity {}", xdg.display()));
    assert_eq!(r["status"], "fail", "{r}");
    assert_eq!(
        row(&report, &format!("identity {}", env.identity().display()))["status"],
        "ok"
    );
}

/// The six headings of the hardening checklist, in order.
const HEADINGS: [&str; 6] = [
    "1. updates",
    "2. SSH",
    "3. firewall/ports",
    "4. not root",
    "5. files & monitoring/audit",
    "6. confinement & disk encryption",
];

#[test]
fn a_listener_on_all_addresses_at_29500_is_warned_about_with_a_rule_template() {
    let listener = match std::net::TcpListener::bind("0.0.0.0:29500") {
        Ok(l) => l,
        Err(e) => {
            eprintln!("*** SKIPPING: cannot listen on 0.0.0.0:29500 ({e}) ***");
            return;
        }
    };
    let env = Env::new();
    let (code, report) = doctor_json(&env, &["--peer".as_ref(), "10.0.0.2".as_ref()]);
    let r = row(&report, "port 29500");
    assert_eq!(r["status"], "warn", "{r}");
    assert!(
        r["detail"].as_str().unwrap().contains("0.0.0.0:29500"),
        "{r}"
    );
    let fix = r["fix"].as_str().unwrap();
    assert!(
        fix.contains("tcp dport 29500 ip saddr { 10.0.0.2 } accept"),
        "{fix}"
    );
    assert_eq!(code, Some(0), "a warning does not fail");
    // The table names the port too.
    let out = env.cmd().arg("doctor").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("port 29500") && text.contains("0.0.0.0:29500"),
        "{text}"
    );
    drop(listener);
    // A bad --peer is a usage error.
    env.cmd()
        .args(["doctor", "--peer", "node-1"])
        .assert()
        .code(crate::util::EXIT_USAGE);
}

#[test]
fn a_world_readable_checkpoint_under_path_is_named_with_chmod_640() {
    let env = Env::new();
    let data = env.path("ckpt");
    fs::create_dir_all(data.join("run1")).unwrap();
    let model = data.join("run1/model.pt");
    fs::write(&model, b"weights").unwrap();
    fs::set_permissions(&model, fs::Permissions::from_mode(0o644)).unwrap();
    let private = data.join("run1/opt.pt");
    fs::write(&private, b"state").unwrap();
    fs::set_permissions(&private, fs::Permissions::from_mode(0o640)).unwrap();
    let (_, report) = doctor_json(&env, &["--path".as_ref(), data.as_os_str()]);
    let r = row(&report, &format!("model files {}", data.display()));
    assert_eq!(r["status"], "warn", "{r}");
    let detail = r["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("{} (mode 644)", model.display())),
        "{r}"
    );
    assert!(
        !detail.contains("opt.pt"),
        "640 is the checklist's mode: {r}"
    );
    let fix = r["fix"].as_str().unwrap();
    assert!(
        fix.starts_with(&format!("chmod 640 {}", model.display())),
        "{fix}"
    );
    assert!(fix.contains("mvault seal"), "{fix}");
    fs::set_permissions(&model, fs::Permissions::from_mode(0o640)).unwrap();
    let (_, report) = doctor_json(&env, &["--path".as_ref(), data.as_os_str()]);
    assert_eq!(
        row(&report, &format!("model files {}", data.display()))["status"],
        "ok"
    );
}

#[test]
fn the_pytorch_host_profile_reads_as_the_checklist() {
    let env = Env::new();
    env.keygen();
    let python = env.path("python");
    fs::write(&python, "#!/bin/sh\necho /srv/venv; echo /usr\n").unwrap();
    fs::set_permissions(&python, fs::Permissions::from_mode(0o755)).unwrap();
    let args: [&std::ffi::OsStr; 4] = [
        "--profile".as_ref(),
        "pytorch-host".as_ref(),
        "--python".as_ref(),
        python.as_os_str(),
    ];
    let (_, report) = doctor_json(&env, &args);
    assert_eq!(report["profile"], "pytorch-host");
    let items = report["items"].as_array().unwrap();
    let mut last = 0;
    for item in items {
        let heading = item["heading"].as_str().unwrap();
        let rank = HEADINGS
            .iter()
            .position(|h| *h == heading)
            .unwrap_or(HEADINGS.len());
        assert!(rank >= last, "checklist order: {item}");
        last = rank;
        if item["status"] != "ok" {
            assert!(
                item["fix"].is_string(),
                "every problem comes with a fix: {item}"
            );
        }
    }
    for name in [
        "unattended-upgrades",
        "security updates",
        "port 29500",
        "port 29400",
        "user",
        "auditd",
        "selinux",
    ] {
        row(&report, name);
    }
    let py = row(&report, &format!("python {}", python.display()));
    assert_eq!(py["status"], "ok", "{py}");
    assert_eq!(py["heading"], HEADINGS[5]);
    // The table prints the headings in the checklist's order.
    let out = env.cmd().arg("doctor").args(args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let at: Vec<usize> = HEADINGS
        .iter()
        .map(|h| {
            text.find(h)
                .unwrap_or_else(|| panic!("{h} missing: {text}"))
        })
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{text}");
}
