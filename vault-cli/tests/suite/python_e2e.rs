//! Python end-to-end test: tests/e2e/run_e2e.py writes tensors with numpy +
//! safetensors, seals them, loads them through `mvault run` with
//! `safetensors.safe_open` (mmap), `np.load(mmap_mode='r')` and
//! `np.fromfile`, and checks that outsiders get EACCES and audit lines.
//!
//! The interpreter is `$MVAULT_PYTHON`, else the repository's `.venv-e2e`
//! (made by scripts/setup-e2e.sh), else `python3`. Without numpy and
//! safetensors (or FUSE) the test is skipped with a message, unless
//! `MVAULT_REQUIRE_E2E=1` (set by CI), which turns a skip into a failure.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

fn required() -> bool {
    std::env::var_os("MVAULT_REQUIRE_E2E").is_some_and(|v| v == "1")
}

/// The interpreter to use, and where its choice came from.
fn interpreter() -> (PathBuf, &'static str) {
    if let Some(python) = std::env::var_os("MVAULT_PYTHON").filter(|p| !p.is_empty()) {
        return (PathBuf::from(python), "$MVAULT_PYTHON");
    }
    let venv = repo_root().join(".venv-e2e/bin/python");
    if venv.exists() {
        return (venv, ".venv-e2e");
    }
    (PathBuf::from("python3"), "python3 on PATH")
}

/// Skips (returns false) with a loud message, or fails under
/// MVAULT_REQUIRE_E2E=1.
fn skip(why: &str) -> bool {
    let msg = format!(
        "Python end-to-end test cannot run: {why}. Run ./scripts/setup-e2e.sh \
         (or set MVAULT_PYTHON to an interpreter with numpy and safetensors)."
    );
    assert!(!required(), "MVAULT_REQUIRE_E2E=1: {msg}");
    // Straight to stderr, past the test harness's capture, so it is seen.
    let _ = writeln!(std::io::stderr(), "\n*** SKIPPING python_e2e: {msg} ***\n");
    false
}

fn python_ready(python: &Path, source: &str) -> bool {
    let probe = Command::new(python)
        .args(["-c", "import numpy, safetensors"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    match probe {
        Err(e) => skip(&format!(
            "{} ({source}) does not start: {e}",
            python.display()
        )),
        Ok(out) if !out.status.success() => skip(&format!(
            "{} ({source}) lacks numpy or safetensors: {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(_) => true,
    }
}

#[test]
fn python_loads_sealed_tensors_through_mvault_run() {
    run_e2e(&[]);
}

#[test]
fn python_loads_a_signed_directory_vault_through_mvault_run() {
    run_e2e(&["--vault"]);
}

/// Runs tests/e2e/run_e2e.py with `extra` arguments and expects its PASS.
fn run_e2e(extra: &[&str]) {
    if !crate::util::mount::fuse_available() {
        return;
    }
    let (python, source) = interpreter();
    if !python_ready(&python, source) {
        return;
    }
    // Output goes to a file, so a chatty failure cannot block on a pipe.
    let log = tempfile::NamedTempFile::new().expect("a log file");
    let out = log.reopen().expect("reopen the log");
    let err = out.try_clone().expect("share the log");
    let mut child = Command::new(&python)
        .arg(repo_root().join("tests/e2e/run_e2e.py"))
        .arg("--mvault")
        .arg(crate::util::mount::mvault_bin())
        .args(extra)
        .env_remove("MVAULT_PASSPHRASE")
        .env_remove("MVAULT_THREADS")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("start run_e2e.py");
    let status = crate::util::mount::wait_or_kill(&mut child, std::time::Duration::from_secs(300));
    let text = std::fs::read_to_string(log.path()).unwrap_or_default();
    let status = status.unwrap_or_else(|| panic!("run_e2e.py timed out after 300 s:\n{text}"));
    assert!(status.success(), "run_e2e.py failed ({status}):\n{text}");
    assert!(text.contains("e2e: PASS"), "{text}");
    eprintln!("{text}");
}
