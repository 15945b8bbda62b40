//! Helpers shared by the CLI end-to-end tests. Every test runs the real
//! `mvault` binary in its own temporary folder, with HOME, XDG_CONFIG_HOME and
//! MVAULT_IDENTITY pointing inside that folder so nothing touches the real
//! home directory. `vaults` holds the directory-vault setups, `mount` the
//! real-FUSE-mount guards; test data and the seeded generators come from
//! the test-support crate.

pub mod mount;
pub mod vaults;

pub use test_support::pattern;
pub use test_support::rng::XorShift64;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use tempfile::TempDir;

/// The smallest chunk size, used by tests that need several chunks.
pub const C: usize = 1 << 16;

/// Bytes of GCM tag after each chunk.
pub const TAG: usize = 16;

/// Exit codes documented in `mvault --help`.
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_KEY: i32 = 3;
pub const EXIT_INTEGRITY: i32 = 4;
pub const EXIT_FORMAT: i32 = 5;
pub const EXIT_IO: i32 = 6;
pub const EXIT_REFUSED: i32 = 7;

/// Cheap Argon2id costs so passphrase tests take milliseconds.
pub const FAST_ARGON2: &str = "m=64,t=1,p=1";

/// An isolated home for one test.
pub struct Env {
    pub dir: TempDir,
}

impl Env {
    pub fn new() -> Self {
        Env {
            dir: tempfile::tempdir().expect("create a temporary folder"),
        }
    }

    /// A path inside the test folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The default identity (what MVAULT_IDENTITY points at).
    pub fn identity(&self) -> PathBuf {
        self.path("identity.txt")
    }

    /// `mvault` with an isolated environment, run from the test folder.
    pub fn cmd(&self) -> Command {
        let mut cmd = Command::cargo_bin("mvault").expect("the mvault binary is built");
        cmd.current_dir(self.dir.path())
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.path("config"))
            .env("MVAULT_IDENTITY", self.identity())
            .env("MVAULT_ARGON2", FAST_ARGON2)
            .env_remove("MVAULT_PASSPHRASE")
            .env_remove("MVAULT_THREADS")
            .env_remove("MVAULT_MAX_ARGON2")
            .timeout(std::time::Duration::from_secs(120));
        cmd
    }

    /// Runs `mvault ARGS` (with this environment) with a pseudo-terminal as
    /// its standard output, through util-linux `script`. `None` when
    /// `script` is missing.
    pub fn in_terminal(&self, args: &[&str]) -> Option<std::process::Output> {
        let bin = assert_cmd::cargo::cargo_bin("mvault");
        let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
        let line: Vec<String> = std::iter::once(bin.to_string_lossy().into_owned())
            .chain(args.iter().map(|a| a.to_string()))
            .map(|a| quote(&a))
            .collect();
        let out = std::process::Command::new("script")
            .args(["-qec", &line.join(" "), "/dev/null"])
            .current_dir(self.dir.path())
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.path("config"))
            .env("MVAULT_IDENTITY", self.identity())
            .env("MVAULT_ARGON2", FAST_ARGON2)
            .env_remove("MVAULT_PASSPHRASE")
            .env_remove("MVAULT_THREADS")
            .stdin(std::process::Stdio::null())
            .output()
            .ok()?;
        Some(out)
    }

    /// Creates the default identity and returns its recipient.
    pub fn keygen(&self) -> String {
        let out = self.cmd().arg("keygen").assert().success();
        recipient_from(&out.get_output().stdout)
    }

    /// Creates an identity at `path` and returns its recipient.
    pub fn keygen_at(&self, path: &Path) -> String {
        let out = self
            .cmd()
            .arg("keygen")
            .arg("-o")
            .arg(path)
            .assert()
            .success();
        recipient_from(&out.get_output().stdout)
    }

    /// Writes `data` to a file in the test folder.
    pub fn write(&self, name: &str, data: &[u8]) -> PathBuf {
        let path = self.path(name);
        fs::write(&path, data).expect("write test input");
        path
    }

    /// Seals `input` to the default identity with 64 KiB chunks and returns
    /// the sealed path.
    pub fn seal_small_chunks(&self, input: &Path) -> PathBuf {
        self.cmd()
            .args(["seal", "--chunk-size", "64K"])
            .arg(input)
            .assert()
            .success();
        sealed_name(input)
    }

    /// `mvault inspect --json` of one file.
    pub fn inspect(&self, sealed: &Path) -> serde_json::Value {
        let out = self
            .cmd()
            .args(["inspect", "--json"])
            .arg(sealed)
            .assert()
            .success();
        let report: serde_json::Value =
            serde_json::from_slice(&out.get_output().stdout).expect("inspect prints JSON");
        let mut items = report["items"].as_array().cloned().unwrap_or_default();
        assert_eq!(items.len(), 1);
        items.remove(0)
    }

    /// Names in the test folder that look like mvault temporary files.
    pub fn temp_files(&self) -> Vec<String> {
        temp_files_in(self.dir.path())
    }
}

/// Names in `dir` that look like mvault temporary files (`.NAME.*.mvault-tmp`).
pub fn temp_files_in(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .expect("list folder")
        .map(|e| {
            e.expect("folder entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.starts_with('.') && n.ends_with(".mvault-tmp"))
        .collect()
}

/// The single `age1...` line keygen prints on stdout.
pub fn recipient_from(stdout: &[u8]) -> String {
    let text = String::from_utf8(stdout.to_vec()).expect("UTF-8 stdout");
    let line = text.trim();
    assert!(
        line.starts_with("age1") && !line.contains('\n'),
        "keygen printed {text:?}"
    );
    line.to_string()
}

/// `FILE` -> `FILE.mvlt`.
pub fn sealed_name(input: &Path) -> PathBuf {
    let mut name = input.as_os_str().to_owned();
    name.push(".mvlt");
    PathBuf::from(name)
}

/// Header length of a sealed file, from its fixed header (bytes 16..20).
pub fn header_len(sealed: &[u8]) -> usize {
    u32::from_le_bytes(sealed[16..20].try_into().unwrap()) as usize
}

/// Permission bits of a file.
pub fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

/// XORs one byte of a file with 0x01.
pub fn flip_byte(path: &Path, offset: usize) {
    let mut bytes = fs::read(path).expect("read");
    bytes[offset] ^= 0x01;
    fs::write(path, bytes).expect("write");
}

/// Stderr of a finished command as text.
pub fn stderr_of(out: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&out.get_output().stderr).into_owned()
}
