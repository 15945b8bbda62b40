//! Benchmark of mvault on object storage (run by `benches/remote.sh`; not a
//! timed test): starts the 3-node Garage cluster of the tests on loopback
//! and measures, for one file of `--size` bytes,
//!
//! - `seal -o s3://…/f.mvlt` against a plain multipart upload of the same
//!   bytes (object_store's `WriteMultipart`, same part size and parts in
//!   flight),
//! - `open s3://…/f.mvlt -o /dev/shm/…` against plainly downloading the
//!   same object with ranged GETs of the same size at the same
//!   concurrency, both discarding the bytes and writing them into a file
//!   beside `open`'s output (what a downloader does),
//! - a sequential read (`cat`) of the file through `mount s3://…/ds.vault`
//!   against plainly downloading the vault's objects the same way,
//! - random reads of 512 KiB through the same mount by 4 readers (the
//!   decrypted-chunk cache fills: the mount's peak RSS),
//!
//! with the peak RSS of each mvault process (VmHWM), the CPU seconds of
//! the client (mvault, or the baseline) and of Garage's nodes, and the
//! GETs issued with the bytes they brought (mvault's `MVAULT_REMOTE_STATS`
//! line, or the baseline's own count); the mount rows also
//! with `--cache-size 64M` (the decrypted-chunk cache, 64 MiB by
//! default for a vault at a URL, is memory the user sizes); then, with `--files
//! N`, files/s for a dataset vault of N files of 1–64 KiB (`--file-kib`) in 100 class
//! folders: signed seal to the store, keyless `verify --pubkey`, and `cat`
//! of every file through `run --mount s3://…`. Prints one tab-separated
//! row per measurement.
//!
//! `cargo run -p vault-remote --example remote_bench -- --mvault PATH
//! [--size BYTES] [--concurrency N] [--work DIR] [--files N] [--file-kib K]`

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use vault_remote::Location;
use vault_remote::config::DEFAULT_BLOCK;
use vault_remote::object::{PART_SIZE, PARTS_IN_FLIGHT};
use vault_remote::testing::GarageCluster;

struct Args {
    mvault: PathBuf,
    size: u64,
    concurrency: usize,
    work: PathBuf,
    files: u64,
    /// Largest dataset file, KiB (files are 1 KiB to this).
    file_kib: u64,
}

fn args() -> Args {
    let mut a = Args {
        mvault: PathBuf::from("target/debug/mvault"),
        size: 512 << 20,
        concurrency: vault_remote::config::DEFAULT_CONCURRENCY,
        work: PathBuf::from("/dev/shm"),
        files: 0,
        file_kib: 64,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_default();
        match flag.as_str() {
            "--mvault" => a.mvault = value.into(),
            "--size" => a.size = vault_remote::config::parse_size(&value).expect("--size"),
            "--concurrency" => a.concurrency = value.parse().expect("--concurrency"),
            "--work" => a.work = value.into(),
            "--files" => a.files = value.parse().expect("--files"),
            "--file-kib" => a.file_kib = value.parse::<u64>().expect("--file-kib").max(2),
            _ => panic!("unknown flag {flag}"),
        }
    }
    a
}

/// CPU seconds (user + system) of this process, of its children waited
/// for (the mvault commands), and of its Garage nodes, from /proc.
fn cpu_seconds() -> [f64; 3] {
    let fields = |stat: &str| -> Vec<u64> {
        // After the command name in parentheses: state, ppid, … (stat(5)).
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        rest.split_whitespace()
            .map(|f| f.parse().unwrap_or(0))
            .collect()
    };
    let me = fields(&std::fs::read_to_string("/proc/self/stat").unwrap_or_default());
    let at = |v: &[u64], i: usize| v.get(i).copied().unwrap_or(0);
    // Indices after the name: utime 11, stime 12, cutime 13, cstime 14.
    let own = at(&me, 11) + at(&me, 12);
    let children = at(&me, 13) + at(&me, 14);
    let pid = std::process::id().to_string();
    let mut garage = 0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let v = fields(&stat);
        if stat.contains("(garage)") && at(&v, 1).to_string() == pid {
            garage += at(&v, 11) + at(&v, 12);
        }
    }
    [own, children, garage].map(|ticks| ticks as f64 / 100.0)
}

static MARK: std::sync::Mutex<[f64; 3]> = std::sync::Mutex::new([0.0; 3]);

/// Starts the CPU count of the next row.
fn mark() {
    *MARK.lock().unwrap() = cpu_seconds();
}

/// CPU seconds since [`mark`] of the client (the mvault command, or this
/// process for a baseline) and of Garage's three nodes: on a small machine
/// they share the cores (with whatever else runs), so the throughput a
/// row reaches follows the CPU it needs.
fn row_cpu(baseline: bool) -> String {
    let before = *MARK.lock().unwrap();
    let now = cpu_seconds();
    let client = if baseline {
        now[0] - before[0]
    } else {
        now[1] - before[1]
    };
    format!(
        "client CPU {client:.1} s, garage CPU {:.1} s",
        now[2] - before[2]
    )
}

/// What one mvault command took: seconds, peak RSS in KiB (VmHWM, read
/// every 10 ms until it exits), and the GETs of sealed objects it issued
/// with the bytes they brought (its `MVAULT_REMOTE_STATS` line).
struct Took {
    seconds: f64,
    rss_kib: u64,
    gets: Option<Gets>,
}

/// GETs issued and bytes they brought.
#[derive(Clone, Copy)]
struct Gets {
    count: u64,
    bytes: u64,
}

impl Gets {
    /// The `mvault: remote reads: N GETs, B bytes` line, if `line` is one.
    fn parse(line: &str) -> Option<Gets> {
        let rest = line.strip_prefix("mvault: remote reads: ")?;
        let (count, bytes) = rest.split_once(" GETs, ")?;
        Some(Gets {
            count: count.parse().ok()?,
            bytes: bytes.strip_suffix(" bytes")?.parse().ok()?,
        })
    }

    fn shown(gets: Option<Gets>) -> String {
        gets.map_or("-".into(), |g| {
            format!(
                "{} GETs, {:.0} MiB",
                g.count,
                g.bytes as f64 / (1 << 20) as f64
            )
        })
    }
}

/// Runs `cmd` (see [`Took`]); its stderr is passed on but for the
/// statistics line.
fn timed(cmd: &mut Command) -> Took {
    mark();
    let started = Instant::now();
    let mut child = cmd
        .env("MVAULT_REMOTE_STATS", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start mvault");
    let stderr = child.stderr.take().expect("piped stderr");
    let reader = std::thread::spawn(move || {
        let mut gets = None;
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)).map_while(Result::ok) {
            match Gets::parse(&line) {
                Some(g) => gets = Some(g),
                None => eprintln!("{line}"),
            }
        }
        gets
    });
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Ok(text) = std::fs::read_to_string(&status_file)
            && let Some(kib) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait().expect("wait") {
            // The command's arguments only: its environment holds the
            // cluster's credentials.
            let args: Vec<_> = cmd.get_args().collect();
            assert!(status.success(), "mvault {args:?} failed");
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let seconds = started.elapsed().as_secs_f64();
    Took {
        seconds,
        rss_kib: peak,
        gets: reader.join().unwrap_or(None),
    }
}

fn row(what: &str, bytes: u64, seconds: f64, rss_kib: Option<u64>, gets: Option<Gets>) {
    let mib_s = bytes as f64 / (1 << 20) as f64 / seconds;
    let rss = rss_kib.map_or("-".into(), |k| format!("{}", k / 1024));
    println!(
        "{what}\t{:.0} MiB\t{seconds:.2} s\t{mib_s:.0} MiB/s\tpeak RSS {rss} MiB\t{}\t{}",
        bytes as f64 / (1 << 20) as f64,
        row_cpu(rss_kib.is_none()),
        Gets::shown(gets)
    );
}

/// A row for mvault command `took`.
fn mvault_row(what: &str, bytes: u64, took: &Took) {
    row(what, bytes, took.seconds, Some(took.rss_kib), took.gets);
}

fn files_row(what: &str, files: u64, took: &Took) {
    println!(
        "{what}\t{files} files\t{:.2} s\t{:.0} files/s\tpeak RSS {} MiB\t{}\t{}",
        took.seconds,
        files as f64 / took.seconds,
        took.rss_kib / 1024,
        row_cpu(false),
        Gets::shown(took.gets)
    );
}

/// `n` files of 1–`max_kib` KiB (pseudo-random sizes and bytes) in 100
/// class folders under `root`; returns their total size.
fn small_files(root: &Path, n: u64, max_kib: u64) -> u64 {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut total = 0;
    let mut buf = Vec::new();
    for i in 0..n {
        let dir = root.join(format!("class{:03}", i % 100));
        if i < 100 {
            std::fs::create_dir_all(&dir).unwrap();
        }
        let len = 1024 + (next() % ((max_kib - 1) * 1024)) as usize;
        buf.clear();
        while buf.len() < len {
            buf.extend_from_slice(&next().to_le_bytes());
        }
        buf.truncate(len);
        std::fs::write(dir.join(format!("{i:06}.bin")), &buf).unwrap();
        total += len as u64;
    }
    total
}

/// Ranged GETs of `block` bytes over every object, `concurrency` in flight
/// (the GETs and bytes it took); with `into`, each range is written at its
/// offset in that file (one object), as a downloader saves it.
async fn download(
    store: &Arc<dyn ObjectStore>,
    objects: &[(ObjectPath, u64)],
    concurrency: usize,
    into: Option<&Arc<std::fs::File>>,
) -> Gets {
    let ranges: Vec<(ObjectPath, std::ops::Range<u64>)> = objects
        .iter()
        .flat_map(|(p, len)| {
            (0..len.div_ceil(DEFAULT_BLOCK)).map(move |i| {
                (
                    p.clone(),
                    i * DEFAULT_BLOCK..((i + 1) * DEFAULT_BLOCK).min(*len),
                )
            })
        })
        .collect();
    let gets = Gets {
        count: ranges.len() as u64,
        bytes: ranges.iter().map(|(_, r)| r.end - r.start).sum(),
    };
    futures::stream::iter(ranges)
        .map(|(p, r)| {
            let store = store.clone();
            let into = into.cloned();
            async move {
                let body = store.get_range(&p, r.clone()).await?;
                let len = body.len();
                if let Some(file) = into {
                    tokio::task::spawn_blocking(move || {
                        std::os::unix::fs::FileExt::write_all_at(&*file, &body, r.start)
                    })
                    .await
                    .expect("write task")
                    .expect("write the download");
                }
                Ok::<_, object_store::Error>(len)
            }
        })
        .buffered(concurrency)
        .try_for_each(|_| async { Ok(()) })
        .await
        .expect("download");
    gets
}

/// A plain multipart upload of `file`.
async fn upload(store: &Arc<dyn ObjectStore>, key: &ObjectPath, file: &Path) {
    let upload = store.put_multipart(key).await.expect("start upload");
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
    let mut f = std::fs::File::open(file).expect("open input");
    let mut buf = vec![0u8; PART_SIZE];
    loop {
        let n = std::io::Read::read(&mut f, &mut buf).expect("read input");
        if n == 0 {
            break;
        }
        writer
            .wait_for_capacity(PARTS_IN_FLIGHT)
            .await
            .expect("upload");
        writer.put(Bytes::copy_from_slice(&buf[..n]));
    }
    writer.finish().await.expect("finish upload");
}

fn main() {
    let a = args();
    let cluster = GarageCluster::start_or_skip("remote_bench").expect("a garage binary");
    let work = a
        .work
        .join(format!("mvault-remote-bench-{}", std::process::id()));
    std::fs::create_dir_all(work.join("ds")).unwrap();
    let input = work.join("ds/data.bin");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut block = vec![0u8; 1 << 20];
        for _ in 0..a.size >> 20 {
            for b in block.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b.copy_from_slice(&x.to_le_bytes());
            }
            f.write_all(&block).unwrap();
        }
    }
    let home = work.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let mvault = |args: &[&str]| {
        let mut c = Command::new(&a.mvault);
        c.envs(cluster.env())
            .env("HOME", &home)
            .env("MVAULT_IDENTITY", home.join("id.txt"))
            .env("MVAULT_REMOTE_CONCURRENCY", a.concurrency.to_string())
            .arg("-q")
            .args(args);
        c
    };
    assert!(
        mvault(&["keygen", "-o"])
            .arg(home.join("id.txt"))
            .status()
            .unwrap()
            .success()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let connect = |key: &str| {
        Location::parse(&cluster.url(key))
            .unwrap()
            .connect(&cluster.options())
            .unwrap()
    };
    println!(
        "# {} MiB, concurrency {}, garage 3 nodes on loopback",
        a.size >> 20,
        a.concurrency
    );

    // seal -o s3:// vs a plain multipart upload.
    let url = cluster.url("bench/data.bin.mvlt");
    let took = timed(mvault(&["seal"]).arg(&input).args(["-o", &url]));
    mvault_row("mvault seal -o s3://", a.size, &took);
    let store = connect("bench/plain.bin");
    mark();
    let t = Instant::now();
    rt.block_on(upload(&store, &ObjectPath::from("bench/plain.bin"), &input));
    row(
        "baseline multipart upload",
        a.size,
        t.elapsed().as_secs_f64(),
        None,
        None,
    );

    // open s3:// vs ranged GETs of the same object.
    let out = work.join("out.bin");
    let took = timed(mvault(&["open", &url, "-o"]).arg(&out));
    mvault_row("mvault open s3://", a.size, &took);
    std::fs::remove_file(&out).unwrap();
    let key = ObjectPath::from("bench/data.bin.mvlt");
    let len = rt.block_on(store.head(&key)).unwrap().size;
    mark();
    let t = Instant::now();
    let gets = rt.block_on(download(&store, &[(key.clone(), len)], a.concurrency, None));
    row(
        "baseline ranged GETs (sealed file)",
        a.size,
        t.elapsed().as_secs_f64(),
        None,
        Some(gets),
    );
    // What `open` does besides decrypting: the bytes saved to a file.
    let file = Arc::new(std::fs::File::create(&out).unwrap());
    mark();
    let t = Instant::now();
    let gets = rt.block_on(download(&store, &[(key, len)], a.concurrency, Some(&file)));
    file.sync_all().unwrap();
    row(
        "baseline download of it into a file (same GETs)",
        a.size,
        t.elapsed().as_secs_f64(),
        None,
        Some(gets),
    );
    drop(file);
    std::fs::remove_file(&out).unwrap();

    // cat through mount s3://…/ds.vault vs ranged GETs of its objects.
    let vault = cluster.url("bench/ds.vault");
    let took = timed(mvault(&["seal"]).arg(work.join("ds")).args(["-o", &vault]));
    mvault_row("mvault seal DIR -o s3://…/ds.vault", a.size, &took);
    let mnt = work.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let script = format!("cat '{}' > /dev/null", mnt.join("data.bin").display());
    let spec = format!("{vault}:{}", mnt.display());
    let took = mount_run(&mvault, &spec, &script, None);
    mvault_row("cat through mvault run --mount s3://", a.size, &took);
    let took = mount_run(&mvault, &spec, &script, Some("64M"));
    mvault_row(
        "cat through mvault run --cache-size 64M --mount s3://",
        a.size,
        &took,
    );
    // Random reads: the decrypted-chunk cache fills (a sequential reader
    // drops what it read, these do not), so this is the mount's peak.
    let reads = (a.size >> 20).max(64);
    let random = format!(
        "for r in 1 2 3 4; do (RANDOM=$r; for i in $(seq {n}); do \
         dd if='{f}' of=/dev/null bs=256K count=2 skip=$(((RANDOM * 32768 + RANDOM) % {blocks})) \
         status=none; done) & done; wait",
        n = reads / 4,
        f = mnt.join("data.bin").display(),
        blocks = (a.size >> 18).max(2) - 1,
    );
    let took = mount_run(&mvault, &spec, &random, None);
    mvault_row(
        &format!("{reads} random reads of 512 KiB through run --mount s3:// (4 readers)"),
        reads << 19,
        &took,
    );
    let objects: Vec<(ObjectPath, u64)> = rt
        .block_on(
            store
                .list(Some(&ObjectPath::from("bench/ds.vault/objects")))
                .try_collect::<Vec<_>>(),
        )
        .unwrap()
        .into_iter()
        .map(|m| (m.location, m.size))
        .collect();
    mark();
    let t = Instant::now();
    let gets = rt.block_on(download(&store, &objects, a.concurrency, None));
    row(
        "baseline ranged GETs (vault objects)",
        a.size,
        t.elapsed().as_secs_f64(),
        None,
        Some(gets),
    );
    std::fs::remove_dir_all(work.join("ds")).unwrap();
    if a.files > 0 {
        dataset_rows(&a, &work, &cluster, &mvault);
    }
    let _ = std::fs::remove_dir_all(&work);
}

/// `mvault run [--cache-size SIZE] --mount SPEC -- bash -c SCRIPT`, timed
/// (the smaller decrypted-chunk cache, 256M by default, is memory the user
/// sizes: those rows show what the remote side adds).
fn mount_run(
    mvault: &dyn Fn(&[&str]) -> Command,
    spec: &str,
    script: &str,
    cache: Option<&str>,
) -> Took {
    let mut args = vec!["run"];
    if let Some(size) = cache {
        args.extend(["--cache-size", size]);
    }
    args.extend(["--mount", spec, "--", "bash", "-c", script]);
    timed(&mut mvault(&args))
}

/// The `--files` rows (see the module doc).
fn dataset_rows(
    a: &Args,
    work: &Path,
    cluster: &GarageCluster,
    mvault: &dyn Fn(&[&str]) -> Command,
) {
    let small = work.join("small");
    let bytes = small_files(&small, a.files, a.file_kib);
    println!(
        "# dataset: {} files of 1-{} KiB, {} MiB in 100 folders",
        a.files,
        a.file_kib,
        bytes >> 20
    );
    let key = work.join("signing.key");
    assert!(
        mvault(&["sign-keygen", "-o"])
            .arg(&key)
            .status()
            .unwrap()
            .success()
    );
    let vault = cluster.url("bench/small.vault");
    let took = timed(
        mvault(&["seal"])
            .arg(&small)
            .args(["-o", &vault, "--sign"])
            .arg(&key),
    );
    files_row("mvault seal DIR -o s3:// (signed)", a.files, &took);
    let took = timed(
        mvault(&["verify", &vault, "--pubkey"])
            .arg(format!("{}.pub", key.display()))
            .env_remove("MVAULT_IDENTITY"),
    );
    files_row("mvault verify --pubkey s3:// (keyless)", a.files, &took);
    let mnt = work.join("mnt-small");
    std::fs::create_dir_all(&mnt).unwrap();
    let script = format!(
        "find '{}' -type f -print0 | xargs -0 -P 4 -n 256 cat > /dev/null",
        mnt.display()
    );
    let spec = format!("{vault}:{}", mnt.display());
    let took = mount_run(mvault, &spec, &script, None);
    files_row(
        "cat every file through run --mount s3:// (4 readers)",
        a.files,
        &took,
    );
    let took = mount_run(mvault, &spec, &script, Some("64M"));
    files_row(
        "cat every file through run --cache-size 64M --mount s3:// (4 readers)",
        a.files,
        &took,
    );
}
