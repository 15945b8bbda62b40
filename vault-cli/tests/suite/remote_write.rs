//! Writing vaults on object storage from several "nodes" (separate
//! `mvault` processes, each with its own HOME, age identity and Garage
//! endpoint): concurrent writers that never lose each other's change
//! (the lock path on Garage), `rm`/`rekey`/`add` with garbage collected
//! only after the new index, `mvault locks`, many readers while one node
//! is removed by `rekey`, and the conditional create on `file://` URLs.
//! Skips loudly without a garage binary unless MVAULT_REQUIRE_GARAGE=1.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::util::vaults::*;
use crate::util::*;
use vault_remote::testing::GarageCluster;

/// One "node": its own folder (HOME), identity and S3 endpoint.
struct Node {
    home: PathBuf,
    recipient: String,
    env: Vec<(String, String)>,
}

impl Node {
    fn new(env: &Env, cluster: Option<&GarageCluster>, i: usize) -> Self {
        let home = env.path(&format!("node{i}"));
        fs::create_dir_all(&home).unwrap();
        let recipient = env.keygen_at(&home.join("identity.txt"));
        Node {
            home,
            recipient,
            env: cluster.map(|c| c.env_via(i)).unwrap_or_default(),
        }
    }

    /// `mvault ARGS` as this node (a plain process, for running in threads).
    fn run(&self, args: &[&str], extra: &[(&str, &str)]) -> Output {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("mvault"))
            .current_dir(&self.home)
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join("config"))
            .env("MVAULT_IDENTITY", self.home.join("identity.txt"))
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(extra.iter().copied())
            .args(args)
            .output()
            .unwrap()
    }
}

/// stdout and stderr of a finished process.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `mvault` as the vault's owner (the default identity of `env`).
fn owner(env: &Env, cluster: &GarageCluster) -> assert_cmd::Command {
    let mut cmd = env.cmd();
    cmd.envs(cluster.env());
    cmd
}

fn objects(cluster: &GarageCluster, prefix: &str) -> Vec<String> {
    cluster.list(&format!("{prefix}/objects"))
}

#[test]
fn garage_two_nodes_write_concurrently_and_no_change_is_lost() {
    let Some(cluster) = GarageCluster::start_or_skip("garage_two_nodes_write") else {
        return;
    };
    let env = Env::new();
    env.keygen();
    checkpoint(&env, "ckpt");
    let url = cluster.url("two-nodes/ckpt.vault");
    owner(&env, &cluster)
        .args(["seal", "ckpt", "-o", &url])
        .assert()
        .success();
    let nodes: Vec<Node> = (0..2)
        .map(|i| Node::new(&env, Some(&cluster), i + 1))
        .collect();
    for n in &nodes {
        owner(&env, &cluster)
            .args(["rekey", &url, "--add-recipient", &n.recipient])
            .assert()
            .success();
    }
    // Each node adds three files of its own, retrying on exit 7 ("vault
    // changed" or "another process is writing"), as a job script would.
    let outcomes: Vec<(usize, usize)> = std::thread::scope(|s| {
        let handles: Vec<_> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let url = &url;
                s.spawn(move || {
                    let (mut ok, mut refused) = (0, 0);
                    for round in 0..3 {
                        let name = format!("node{i}-{round}.txt");
                        fs::write(n.home.join(&name), name.as_bytes()).unwrap();
                        for attempt in 0.. {
                            let out = n.run(&["add", url, &name], &[]);
                            match out.status.code() {
                                Some(0) => break,
                                Some(7) if attempt < 20 => {
                                    let t = text(&out);
                                    assert!(t.contains("another mvault process"), "{t}");
                                    refused += 1;
                                }
                                other => panic!("node {i} add {name}: {other:?}: {}", text(&out)),
                            }
                        }
                        ok += 1;
                    }
                    (ok, refused)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    eprintln!("(added, refused with exit 7) per node: {outcomes:?}");
    let ls = owner(&env, &cluster).args(["ls", &url]).assert().success();
    let listing = String::from_utf8_lossy(&ls.get_output().stdout).into_owned();
    for i in 0..2 {
        for round in 0..3 {
            let name = format!("node{i}-{round}.txt");
            assert!(listing.contains(&name), "{name} lost:\n{listing}");
        }
    }
    let v = item_of(
        &owner(&env, &cluster)
            .args(["verify", &url, "--json", "-i", "identity.txt"])
            .assert()
            .success(),
    );
    assert_eq!(v["files"], 8 + 6);
    assert!(
        !cluster
            .list("two-nodes/ckpt.vault")
            .iter()
            .any(|k| k.contains("/locks/") || k.contains("/probe/")),
        "every lock released"
    );
}

#[test]
fn garage_rm_rekey_add_collect_garbage_after_the_new_index() {
    let Some(cluster) = GarageCluster::start_or_skip("garage_rm_rekey_add") else {
        return;
    };
    let env = Env::new();
    let me = env.keygen();
    checkpoint(&env, "ckpt");
    let prefix = "gc/ckpt.vault";
    let url = cluster.url(prefix);
    owner(&env, &cluster)
        .args(["seal", "ckpt", "-o", &url])
        .assert()
        .success();
    let first = objects(&cluster, prefix);

    // rm with the default grace: the new index is written, the object of
    // the removed file stays (readers of generation 1 may need it) and
    // keyless verify still passes.
    let out = owner(&env, &cluster)
        .args(["rm", &url, "model-00002-of-00003.safetensors"])
        .assert()
        .success();
    assert!(
        stderr_of(&out).contains("unreferenced objects kept"),
        "{}",
        stderr_of(&out)
    );
    let kept = objects(&cluster, prefix);
    assert!(
        first.iter().all(|k| kept.contains(k)),
        "{first:?} -> {kept:?}"
    );
    owner(&env, &cluster)
        .args(["verify", &url])
        .assert()
        .success();
    owner(&env, &cluster)
        .args(["cat", &format!("{url}:model-00002-of-00003.safetensors")])
        .assert()
        .code(EXIT_USAGE);

    // add with no grace: the garbage goes, after the new index.
    env.write("extra.txt", b"extra");
    owner(&env, &cluster)
        .env("MVAULT_REMOTE_GC_GRACE_SECS", "0")
        .args(["add", &url, "extra.txt"])
        .assert()
        .success();
    let now = objects(&cluster, prefix);
    let v = item_of(
        &owner(&env, &cluster)
            .env("MVAULT_REMOTE_GC_GRACE_SECS", "0")
            .args(["verify", &url, "--json", "-i", "identity.txt"])
            .assert()
            .success(),
    );
    assert_eq!(v["files"], 8);
    assert_eq!(
        v["objects"],
        now.len(),
        "exactly the referenced objects are left: {now:?}"
    );
    assert!(now.len() < kept.len() + 1, "{kept:?} -> {now:?}");

    // rekey: add a second recipient, drop the first.
    let other = env.keygen_at(&env.path("other.txt"));
    owner(&env, &cluster)
        .args(["rekey", &url, "--add-recipient", &other])
        .assert()
        .success();
    owner(&env, &cluster)
        .args(["rekey", &url, "-i", "other.txt", "--remove-recipient", &me])
        .assert()
        .success();
    owner(&env, &cluster)
        .args(["ls", &url])
        .assert()
        .code(EXIT_KEY);
    // rekey --new-key re-encrypts every object; with no grace the old
    // ones are deleted after the new index.
    let before = objects(&cluster, prefix);
    owner(&env, &cluster)
        .env("MVAULT_REMOTE_GC_GRACE_SECS", "0")
        .args(["rekey", &url, "-i", "other.txt", "--new-key"])
        .assert()
        .success();
    let after = objects(&cluster, prefix);
    assert_eq!(after.len(), before.len());
    assert!(
        after.iter().all(|k| !before.contains(k)),
        "{before:?} {after:?}"
    );
    let out = owner(&env, &cluster)
        .args(["cat", &format!("{url}:extra.txt"), "-i", "other.txt"])
        .assert()
        .success();
    assert_eq!(out.get_output().stdout, b"extra");

    // mvault locks: a dead writer's lock refuses writers until it is
    // stale, then `--remove-stale` removes it.
    cluster.put(
        &format!("{prefix}/locks/dead"),
        b"mvault writer lock\nhost gone\npid 1\n",
    );
    let out = owner(&env, &cluster)
        .args(["locks", &url])
        .assert()
        .success();
    let listed = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        listed.starts_with("locks/dead\t") && listed.contains("\tfresh\thost gone pid 1"),
        "{listed}"
    );
    let out = owner(&env, &cluster)
        .env("MVAULT_REMOTE_LOCK_WAIT_SECS", "0")
        .args(["add", &url, "extra.txt", "-i", "other.txt"])
        .assert()
        .code(EXIT_REFUSED);
    assert!(
        stderr_of(&out).contains("mvault locks"),
        "{}",
        stderr_of(&out)
    );
    std::thread::sleep(std::time::Duration::from_secs(2));
    let stale = [("MVAULT_REMOTE_LOCK_STALE_SECS", "1")];
    let out = owner(&env, &cluster)
        .envs(stale)
        .args(["locks", &url])
        .assert()
        .success();
    assert!(String::from_utf8_lossy(&out.get_output().stdout).contains("\tstale\t"));
    let out = owner(&env, &cluster)
        .envs(stale)
        .args(["locks", &url, "--remove-stale"])
        .assert()
        .success();
    assert!(
        stderr_of(&out).contains("removed 1 stale lock(s)"),
        "{}",
        stderr_of(&out)
    );
    assert!(cluster.list(&format!("{prefix}/locks")).is_empty());
    env.write("later.txt", b"later");
    owner(&env, &cluster)
        .args(["add", &url, "later.txt", "-i", "other.txt"])
        .assert()
        .success();
    // Local vaults have no lock objects.
    env.cmd().args(["locks", "ckpt"]).assert().code(EXIT_USAGE);
}

/// The files a node reads in the many-nodes test, with their contents.
fn dataset(env: &Env) -> Vec<(String, Vec<u8>)> {
    let files: Vec<(String, Vec<u8>)> = (0..6)
        .map(|i| {
            (
                format!("shard-{i}.bin"),
                pattern(100 + i, 200_000 + i as usize * 7),
            )
        })
        .collect();
    fs::create_dir_all(env.path("ds")).unwrap();
    for (name, data) in &files {
        fs::write(env.path("ds").join(name), data).unwrap();
    }
    files
}

/// Node `n` reads every file with `cat` and checks the bytes; returns the
/// exit codes seen.
fn read_all(n: &Node, url: &str, files: &[(String, Vec<u8>)]) -> Vec<Option<i32>> {
    files
        .iter()
        .map(|(name, data)| {
            let out = n.run(&["cat", &format!("{url}:{name}")], &[]);
            if out.status.success() {
                assert!(out.stdout == *data, "wrong bytes for {name}");
            }
            out.status.code()
        })
        .collect()
}

#[test]
fn garage_many_nodes_read_one_vault_while_one_node_is_removed() {
    let Some(cluster) = GarageCluster::start_or_skip("garage_many_nodes") else {
        return;
    };
    let env = Env::new();
    env.keygen();
    let files = dataset(&env);
    let url = cluster.url("many/ds.vault");
    owner(&env, &cluster)
        .args(["seal", "ds", "-o", &url])
        .assert()
        .success();
    let nodes: Vec<Node> = (0..4).map(|i| Node::new(&env, Some(&cluster), i)).collect();
    for n in &nodes {
        owner(&env, &cluster)
            .args(["rekey", &url, "--add-recipient", &n.recipient])
            .assert()
            .success();
    }
    // Every node reads concurrently: cat of every file, keyed verify, open.
    std::thread::scope(|s| {
        for (i, n) in nodes.iter().enumerate() {
            let (url, files) = (&url, &files);
            s.spawn(move || {
                assert!(
                    read_all(n, url, files).iter().all(|c| *c == Some(0)),
                    "node {i}"
                );
                let out = n.run(&["verify", url, "-i", "identity.txt"], &[]);
                assert!(out.status.success(), "node {i}: {}", text(&out));
                let out = n.run(&["open", url, "-o", "out"], &[]);
                assert!(out.status.success(), "node {i}: {}", text(&out));
            });
        }
    });
    // Node 3 is removed while nodes 0-2 keep reading.
    let removed = &nodes[3];
    std::thread::scope(|s| {
        for n in &nodes[..3] {
            let (url, files) = (&url, &files);
            s.spawn(move || {
                for _ in 0..3 {
                    assert!(read_all(n, url, files).iter().all(|c| *c == Some(0)));
                }
            });
        }
        owner(&env, &cluster)
            .args(["rekey", &url, "--remove-recipient", &removed.recipient])
            .assert()
            .success();
    });
    // Node 3 keeps what it already read; new unlocks fail (exit 3).
    for (name, data) in &files {
        assert!(fs::read(removed.home.join("out").join(name)).unwrap() == *data);
    }
    assert!(
        read_all(removed, &url, &files[..1])
            .iter()
            .all(|c| *c == Some(EXIT_KEY))
    );
    let out = removed.run(&["verify", &url, "-i", "identity.txt"], &[]);
    assert_eq!(out.status.code(), Some(EXIT_KEY), "{}", text(&out));
    // The others still read, and keyless verify passes.
    for n in &nodes[..3] {
        assert!(read_all(n, &url, &files).iter().all(|c| *c == Some(0)));
    }
    owner(&env, &cluster)
        .args(["verify", &url])
        .assert()
        .success();
}

/// The conditional path at the CLI: object_store's local-filesystem store
/// honours create-if-absent, so writers of a new `file://` vault take no
/// lock; of several creating it at once, every one ends 0 or 7 and the
/// vault is whole.
#[test]
fn file_url_new_vault_created_by_several_processes_at_once() {
    let env = Env::new();
    env.keygen();
    let bucket = env.path("bucket");
    fs::create_dir(&bucket).unwrap();
    let url = format!("file://{}/race.vault", bucket.display());
    let nodes: Vec<Node> = (0..4).map(|i| Node::new(&env, None, i)).collect();
    for (i, n) in nodes.iter().enumerate() {
        let dir = n.home.join("src");
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join(format!("from-node{i}.bin")),
            pattern(i as u64, 100_000),
        )
        .unwrap();
    }
    let recipients: Vec<String> = nodes.iter().map(|n| n.recipient.clone()).collect();
    let codes: Vec<Option<i32>> = std::thread::scope(|s| {
        let handles: Vec<_> = nodes
            .iter()
            .map(|n| {
                let (url, recipients) = (&url, &recipients);
                s.spawn(move || {
                    let mut args = vec!["seal", "src", "-o", url.as_str()];
                    for r in recipients {
                        args.extend(["-r", r.as_str()]);
                    }
                    let out = n.run(&args, &[]);
                    let code = out.status.code();
                    assert!(matches!(code, Some(0 | 7)), "{code:?}: {}", text(&out));
                    code
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(codes.contains(&Some(0)), "{codes:?}");
    let out = nodes[0].run(&["verify", &url, "-i", "identity.txt"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let leftovers =
        |sub: &str| fs::read_dir(bucket.join("race.vault").join(sub)).map_or(0, |d| d.count());
    assert_eq!(leftovers("locks"), 0);
    assert_eq!(leftovers("probe"), 0);
    assert!(Path::new(&bucket.join("race.vault/index")).is_file());
}
