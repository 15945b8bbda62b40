//! `mvault bench`: this machine's limits next to mvault's own throughput,
//! measured on one generated file in one run.
//!
//! The reference rows (memcpy, file copy, BLAKE3 over a mapping) run in this
//! process; the mvault rows run this very binary as a child process, exactly
//! as a user would, so they include start-up and key unwrapping. Every
//! operation runs `--repeat` times, interleaved, and the best time counts:
//! on a shared machine the fastest run is the one least disturbed.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rayon::prelude::*;
use serde_json::{Value, json};

use crate::cli::BenchArgs;
use crate::exit::{Exit, fail};
use crate::report::human_bytes;

/// Buffer for the in-process memcpy and for generating the input file: big
/// enough to defeat the caches, small enough for a small footprint.
const BUFFER: usize = 64 << 20;

/// Headroom kept free in the benchmark folder beyond what the files need.
const SPACE_MARGIN: u64 = 256 << 20;

/// One measured operation.
struct Row {
    name: &'static str,
    /// Bytes the operation processes (plaintext bytes for mvault rows).
    bytes: u64,
    best: Option<Duration>,
    /// Peak resident memory of the child process, in bytes.
    peak_rss: Option<u64>,
    /// Why the row has no figure, when it has none.
    missing: Option<String>,
    /// The exit code of that failure.
    missing_exit: Exit,
}

impl Row {
    fn new(name: &'static str, bytes: u64) -> Self {
        Row {
            name,
            bytes,
            best: None,
            peak_rss: None,
            missing: None,
            missing_exit: Exit::Ok,
        }
    }

    fn record(&mut self, elapsed: Duration, rss: Option<u64>) {
        self.best = Some(self.best.map_or(elapsed, |b| b.min(elapsed)));
        if let Some(rss) = rss {
            self.peak_rss = Some(self.peak_rss.map_or(rss, |p| p.max(rss)));
        }
    }

    fn gb_per_s(&self) -> Option<f64> {
        self.best
            .map(|d| self.bytes as f64 / d.as_secs_f64().max(1e-9) / 1e9)
    }
}

pub fn run(args: BenchArgs, threads: Option<usize>, quiet: bool) -> Result<Exit> {
    if args.size == 0 {
        return Err(fail(Exit::Usage, "--size must be more than 0"));
    }
    if args.repeat == 0 {
        return Err(fail(Exit::Usage, "--repeat must be at least 1"));
    }
    let dir = args.dir.clone().unwrap_or_else(default_dir);
    check_space(&dir, args.size)?;
    let work = tempfile::Builder::new()
        .prefix(".mvault-bench.")
        .tempdir_in(&dir)
        .with_context(|| format!("cannot create a folder in {}", dir.display()))?;
    let bench = Bench::new(work.path(), args.size, threads)?;
    let pool_threads = rayon::current_num_threads();
    let say = |text: &str| {
        if !quiet && !args.json {
            eprintln!("mvault bench: {text}");
        }
    };
    say(&format!(
        "generating {} of random data in {}",
        human_bytes(args.size),
        work.path().display()
    ));
    bench.generate()?;

    let size = args.size;
    let mut memcpy_1 = Row::new("memcpy, 1 thread", size);
    let mut memcpy_n = Row::new("memcpy, all threads", size);
    let mut copy = Row::new("file copy (cp)", size);
    let mut b3 = Row::new("BLAKE3 of a mapping (b3sum)", size);
    let mut b3_pread = Row::new("BLAKE3, positional reads", size);
    let mut seal = Row::new("mvault seal", size);
    let mut open = Row::new("mvault open", size);
    let mut verify = Row::new("mvault verify (keyed)", size);
    let mut vault_seal = Row::new("mvault seal (folder vault)", size);
    let mut keyless = Row::new("mvault verify vault (keyless)", size);

    for round in 1..=args.repeat {
        say(&format!("round {round} of {}", args.repeat));
        memcpy_1.record(bench.memcpy(false), None);
        memcpy_n.record(bench.memcpy(true), None);
        copy.record(bench.file_copy()?, None);
        b3.record(bench.blake3_mmap()?, None);
        b3_pread.record(bench.blake3_pread()?, None);
        let (t, rss) = bench.mvault_op(Op::Seal)?;
        seal.record(t, rss);
        let (t, rss) = bench.mvault_op(Op::Open)?;
        open.record(t, rss);
        let (t, rss) = bench.mvault_op(Op::Verify)?;
        verify.record(t, rss);
        match bench.mvault_op(Op::SealVault) {
            Ok((t, rss)) => {
                vault_seal.record(t, rss);
                let (t, rss) = bench.mvault_op(Op::VerifyKeyless)?;
                keyless.record(t, rss);
            }
            Err(e) => {
                vault_seal.missing = Some(format!("{e:#}"));
                vault_seal.missing_exit = crate::exit::exit_for(&e);
                keyless.missing = vault_seal.missing.clone();
                keyless.missing_exit = vault_seal.missing_exit;
            }
        }
    }
    drop(bench);
    drop(work);

    let rows = [
        &memcpy_1,
        &memcpy_n,
        &copy,
        &b3,
        &b3_pread,
        &seal,
        &open,
        &verify,
        &vault_seal,
        &keyless,
    ];
    let memcpy_gbs = memcpy_n.gb_per_s();
    let copy_gbs = copy.gb_per_s();
    if args.json {
        let items: Vec<_> = rows
            .iter()
            .map(|r| {
                let gbs = r.gb_per_s();
                let mut row = json!({
                    "operation": r.name,
                    "ok": r.missing.is_none(),
                    "bytes_processed": r.bytes,
                    "best_seconds": r.best.map(|d| d.as_secs_f64()),
                    "gb_per_s": gbs,
                    "vs_memcpy": ratio(gbs, memcpy_gbs),
                    "vs_copy": ratio(gbs, copy_gbs),
                    "peak_rss_bytes": r.peak_rss,
                });
                if let Some(why) = &r.missing {
                    row["error"] = crate::json::error_value(r.missing_exit, why);
                }
                row
            })
            .collect();
        let settings = json!({
            "plaintext_bytes": size,
            "dir": dir.display().to_string(),
            "threads": pool_threads,
            "repeat": args.repeat,
            "keyless_vs_b3sum": ratio(keyless.gb_per_s(), b3.gb_per_s()),
        });
        let report = crate::json::report("bench", true, items, vec![]);
        let Value::Object(settings) = settings else {
            unreachable!("json! of an object")
        };
        crate::json::print(&crate::json::with_fields(report, settings));
        return Ok(Exit::Ok);
    }
    println!(
        "mvault bench: {} in {}, {} thread{}, best of {}",
        human_bytes(size),
        dir.display(),
        pool_threads,
        if pool_threads == 1 { "" } else { "s" },
        args.repeat
    );
    println!(
        "{:<31} {:>7} {:>9} {:>7} {:>10}",
        "operation", "GB/s", "x memcpy", "x copy", "peak RSS"
    );
    for r in rows {
        let gbs = r.gb_per_s();
        let fmt_ratio = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.2}"));
        match (gbs, &r.missing) {
            (Some(g), _) => println!(
                "{:<31} {:>7.2} {:>9} {:>7} {:>10}",
                r.name,
                g,
                fmt_ratio(ratio(Some(g), memcpy_gbs)),
                fmt_ratio(ratio(Some(g), copy_gbs)),
                r.peak_rss.map_or("-".to_string(), human_bytes),
            ),
            (None, Some(why)) => println!("{:<31} n/a ({why})", r.name),
            (None, None) => println!("{:<31} n/a", r.name),
        }
    }
    if let Some(x) = ratio(keyless.gb_per_s(), b3.gb_per_s()) {
        println!("keyless vault verify / BLAKE3 of a mapping: {x:.2}");
    }
    Ok(Exit::Ok)
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// `/dev/shm` (memory, takes the disk out) when it exists, else the
/// system's temporary folder.
fn default_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Refuses unless `dir` has room for the input, the sealed copy and one
/// more copy (the opened file or the vault), plus a margin.
fn check_space(dir: &Path, size: u64) -> Result<()> {
    let stat =
        rustix::fs::statvfs(dir).with_context(|| format!("cannot inspect {}", dir.display()))?;
    let free = stat.f_bavail.saturating_mul(stat.f_frsize);
    let need = size
        .saturating_mul(3)
        .saturating_add(size / 256)
        .saturating_add(SPACE_MARGIN);
    if free < need {
        return Err(fail(
            Exit::Refused,
            format!(
                "{} has {} free but the benchmark needs {} (three copies of --size plus a margin); \
                 choose a smaller --size or another --dir",
                dir.display(),
                human_bytes(free),
                human_bytes(need)
            ),
        ));
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Op {
    Seal,
    Open,
    Verify,
    SealVault,
    VerifyKeyless,
}

/// The benchmark's files, all inside one temporary folder.
struct Bench {
    dir: PathBuf,
    size: u64,
    threads: Option<usize>,
    exe: PathBuf,
    identity: PathBuf,
    recipient: String,
}

impl Bench {
    fn new(dir: &Path, size: u64, threads: Option<usize>) -> Result<Self> {
        let identity = age::x25519::Identity::generate();
        let recipient = identity.to_public().to_string();
        let identity_path = dir.join("identity.txt");
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&identity_path)?;
        {
            use age::secrecy::ExposeSecret;
            writeln!(file, "{}", identity.to_string().expose_secret())?;
        }
        fs::set_permissions(&identity_path, fs::Permissions::from_mode(0o600))?;
        fs::create_dir(dir.join("home"))?;
        fs::create_dir(dir.join("folder"))?;
        Ok(Bench {
            dir: dir.to_path_buf(),
            size,
            threads,
            exe: std::env::current_exe().context("cannot find the mvault executable")?,
            identity: identity_path,
            recipient,
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Writes `size` bytes of incompressible data (BLAKE3 XOF output under
    /// a random key) to `data.bin`.
    fn generate(&self) -> Result<()> {
        // A fresh random key from the system CSPRNG.
        let key = *vault_core::FileKey::generate()?.expose();
        let mut out = File::create(self.path("data.bin"))?;
        let mut buffer = vec![0u8; BUFFER.min(self.size as usize)];
        let mut done = 0u64;
        while done < self.size {
            let n = (self.size - done).min(buffer.len() as u64) as usize;
            buffer[..n]
                .par_chunks_mut(1 << 20)
                .enumerate()
                .for_each(|(i, piece)| {
                    let mut xof = blake3::Hasher::new_keyed(&key);
                    xof.update(&(done + (i as u64) * (1 << 20)).to_le_bytes());
                    xof.finalize_xof().fill(piece);
                });
            out.write_all(&buffer[..n])?;
            done += n as u64;
        }
        out.sync_all()?;
        Ok(())
    }

    /// Copies `size` bytes between two 64 MiB buffers, on one thread or on
    /// every thread of the pool.
    fn memcpy(&self, parallel: bool) -> Duration {
        let len = BUFFER.min(self.size as usize);
        let src: Vec<u8> = (0..len).map(|i| (i * 131 % 251) as u8).collect();
        let mut dst = vec![1u8; len];
        let started = Instant::now();
        let mut done = 0u64;
        while done < self.size {
            let n = (self.size - done).min(len as u64) as usize;
            if parallel {
                dst[..n]
                    .par_chunks_mut(1 << 20)
                    .zip(src[..n].par_chunks(1 << 20))
                    .for_each(|(d, s)| d.copy_from_slice(s));
            } else {
                dst[..n].copy_from_slice(&src[..n]);
            }
            std::hint::black_box(&mut dst);
            done += n as u64;
        }
        started.elapsed()
    }

    /// `cp` of the input to a new file (std's copy uses `copy_file_range`
    /// like coreutils), then removes the copy.
    fn file_copy(&self) -> Result<Duration> {
        let target = self.path("copy.bin");
        let started = Instant::now();
        fs::copy(self.path("data.bin"), &target)?;
        let elapsed = started.elapsed();
        fs::remove_file(target)?;
        Ok(elapsed)
    }

    /// What `b3sum` does: BLAKE3 of the memory-mapped file on all threads.
    fn blake3_mmap(&self) -> Result<Duration> {
        let started = Instant::now();
        let mut hasher = blake3::Hasher::new();
        hasher.update_mmap_rayon(self.path("data.bin"))?;
        std::hint::black_box(hasher.finalize());
        Ok(started.elapsed())
    }

    /// BLAKE3 of the file with `vault_core::hash_source`: parallel `pread`s
    /// into per-thread buffers instead of a memory map.
    fn blake3_pread(&self) -> Result<Duration> {
        let file = File::open(self.path("data.bin"))?;
        let started = Instant::now();
        std::hint::black_box(vault_core::hash_source(&file, &|_| {})?);
        Ok(started.elapsed())
    }

    /// Runs one mvault operation as a child process and returns its wall
    /// time and peak resident memory. Outputs of the previous round are
    /// removed first, outside the timing.
    fn mvault_op(&self, op: Op) -> Result<(Duration, Option<u64>)> {
        let data = self.path("data.bin");
        let sealed = self.path("data.bin.mvlt");
        let opened = self.path("opened.bin");
        let vault = self.path("bench.vault");
        let mut cmd = Command::new(&self.exe);
        if let Some(n) = self.threads {
            cmd.arg("--threads").arg(n.to_string());
        }
        cmd.arg("-q")
            .env_remove("MVAULT_IDENTITY")
            .env_remove("MVAULT_PASSPHRASE")
            .env_remove("MVAULT_THREADS")
            .env("HOME", self.path("home"))
            .env("XDG_CONFIG_HOME", self.path("home"))
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let what = match op {
            Op::Seal => {
                remove_if_present(&sealed)?;
                cmd.arg("seal")
                    .arg(&data)
                    .arg("-o")
                    .arg(&sealed)
                    .arg("-r")
                    .arg(&self.recipient);
                "seal"
            }
            Op::Open => {
                remove_if_present(&opened)?;
                cmd.arg("open")
                    .arg(&sealed)
                    .arg("-o")
                    .arg(&opened)
                    .arg("-i")
                    .arg(&self.identity);
                "open"
            }
            Op::Verify => {
                // The opened copy is not needed any more; free its space.
                remove_if_present(&opened)?;
                cmd.arg("verify").arg(&sealed).arg("-i").arg(&self.identity);
                "verify"
            }
            Op::SealVault => {
                if vault.exists() {
                    fs::remove_dir_all(&vault)?;
                }
                let member = self.path("folder").join("data.bin");
                if !member.exists() {
                    fs::hard_link(&data, &member)
                        .or_else(|_| fs::copy(&data, &member).map(drop))?;
                }
                cmd.arg("seal")
                    .arg(self.path("folder"))
                    .arg("-o")
                    .arg(&vault)
                    .arg("-r")
                    .arg(&self.recipient);
                "seal of a folder"
            }
            Op::VerifyKeyless => {
                // No -i, no identity under HOME: only keyless checks run.
                cmd.arg("verify").arg(&vault);
                "keyless verify"
            }
        };
        cmd.stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot run {}", self.exe.display()))?;
        let pid = child.id();
        let mut peak = None;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if let Some(hwm) = peak_rss(pid) {
                peak = Some(hwm);
            }
            sleep(Duration::from_millis(2));
        };
        let elapsed = started.elapsed();
        if !status.success() {
            let mut err = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                use std::io::Read;
                let _ = stderr.read_to_string(&mut err);
            }
            anyhow::bail!("mvault {what} failed ({status}): {}", err.trim());
        }
        Ok((elapsed, peak))
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        // The temporary folder removes everything; drop the big files early.
        for name in ["data.bin", "data.bin.mvlt", "opened.bin", "copy.bin"] {
            let _ = fs::remove_file(self.path(name));
        }
    }
}

fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// A child's peak resident set so far (`VmHWM`), in bytes.
fn peak_rss(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
