//! A real S3-compatible store for the integration tests: a Garage cluster
//! (https://garagehq.deuxfleurs.fr) of three nodes on loopback addresses
//! 127.0.0.x (distinct RPC and S3 ports, `replication_factor = 3`), with a
//! layout assigned and applied, one bucket and one key, all made with the
//! `garage` CLI. Stopped (every node killed, its folder removed) on drop.
//!
//! The binary comes from `MVAULT_GARAGE`, the cache
//! `scripts/setup-garage.sh` fills (`~/.cache/mvault/garage/bin/garage`),
//! or `PATH`. Without one, [`GarageCluster::start_or_skip`] prints a loud
//! skip notice, unless `MVAULT_REQUIRE_GARAGE=1` (CI), where it panics.
//! Credentials go to child processes only ([`GarageCluster::env`]) or to
//! in-process stores as options ([`GarageCluster::options`]), never into
//! this process's environment.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use object_store::ObjectStoreExt;
use vault_core::Source;

/// Set to `1` to make a missing garage binary a failure, not a skip.
pub const REQUIRE_ENV: &str = "MVAULT_REQUIRE_GARAGE";
/// The S3 region the cluster answers to.
pub const REGION: &str = "garage";
/// The bucket every test writes under (each test under its own prefix).
pub const BUCKET: &str = "mvault-test";

/// One garage server process.
struct Node {
    config: PathBuf,
    rpc: SocketAddr,
    child: Option<Child>,
}

/// A running cluster (see the module doc).
pub struct GarageCluster {
    garage: PathBuf,
    nodes: Vec<Node>,
    s3: SocketAddr,
    /// Every node's S3 endpoint (`s3` is the first).
    apis: Vec<SocketAddr>,
    key_id: String,
    secret: String,
    _dir: tempfile::TempDir,
}

/// A free TCP port on `ip` (bound, read, released).
fn free_port(ip: &str) -> std::io::Result<SocketAddr> {
    TcpListener::bind(format!("{ip}:0"))?.local_addr()
}

fn other(message: String) -> std::io::Error {
    std::io::Error::other(message)
}

impl GarageCluster {
    /// The garage binary, if one is installed (see the module doc).
    pub fn binary() -> Option<PathBuf> {
        let cache = std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".cache/mvault/garage/bin/garage"));
        let on_path = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("garage"))
                .find(|p| p.is_file())
        });
        std::env::var_os("MVAULT_GARAGE")
            .map(PathBuf::from)
            .into_iter()
            .chain(cache)
            .chain(on_path)
            .find(|p| p.is_file())
    }

    /// A 3-node cluster for test `test`, or `None` (after a loud notice)
    /// when garage is not installed and not required.
    pub fn start_or_skip(test: &str) -> Option<Self> {
        let Some(garage) = Self::binary() else {
            if std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1") {
                panic!(
                    "{test}: {REQUIRE_ENV}=1 but no garage binary (run scripts/setup-garage.sh)"
                );
            }
            eprintln!(
                "SKIPPED {test}: no garage binary (run scripts/setup-garage.sh, or set MVAULT_GARAGE)"
            );
            return None;
        };
        // Ports are picked free and then released before the nodes bind
        // them, so another process may take one in between: a start that
        // fails is tried again on fresh ports.
        let mut last = None;
        for _ in 0..3 {
            match Self::start(&garage, 3) {
                Ok(cluster) => return Some(cluster),
                Err(e) => {
                    eprintln!("{test}: Garage cluster did not start ({e}); trying again");
                    last = Some(e);
                }
            }
        }
        panic!(
            "{test}: cannot start the Garage cluster: {}",
            last.expect("three tries")
        )
    }

    /// Starts `count` nodes on 127.0.0.2, 127.0.0.3, … and sets them up.
    pub fn start(garage: &Path, count: usize) -> std::io::Result<Self> {
        let dir = tempfile::tempdir()?;
        let rpc_secret = crate::unique_hex(64);
        let mut nodes = Vec::new();
        let mut s3 = None;
        let mut apis = Vec::new();
        for i in 0..count {
            let ip = format!("127.0.0.{}", 2 + i);
            let rpc = free_port(&ip)?;
            let api = free_port(&ip)?;
            s3.get_or_insert(api);
            apis.push(api);
            let home = dir.path().join(format!("node{i}"));
            std::fs::create_dir_all(home.join("meta"))?;
            std::fs::create_dir_all(home.join("data"))?;
            let config = home.join("garage.toml");
            std::fs::write(
                &config,
                format!(
                    "metadata_dir = \"{meta}\"\ndata_dir = \"{data}\"\n\
                     replication_factor = {factor}\n\
                     rpc_bind_addr = \"{rpc}\"\nrpc_public_addr = \"{rpc}\"\n\
                     rpc_secret = \"{rpc_secret}\"\n\n\
                     [s3_api]\ns3_region = \"{REGION}\"\napi_bind_addr = \"{api}\"\n\
                     root_domain = \".s3.garage.localhost\"\n",
                    meta = home.join("meta").display(),
                    data = home.join("data").display(),
                    factor = count.min(3),
                ),
            )?;
            let log = std::fs::File::create(home.join("server.log"))?;
            let child = Command::new(garage)
                .arg("-c")
                .arg(&config)
                .arg("server")
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()?;
            nodes.push(Node {
                config,
                rpc,
                child: Some(child),
            });
        }
        let mut cluster = GarageCluster {
            garage: garage.to_path_buf(),
            nodes,
            s3: s3.ok_or_else(|| other("no nodes".into()))?,
            apis,
            key_id: format!("GK{}", crate::unique_hex(24)),
            secret: crate::unique_hex(64),
            _dir: dir,
        };
        cluster.set_up()?;
        Ok(cluster)
    }

    /// `garage -c <node 0> ARGS…`, retried until it succeeds (the cluster
    /// converges asynchronously) or 60 s pass; its stdout.
    fn garage(&self, args: &[&str]) -> std::io::Result<String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = Command::new(&self.garage)
                .arg("-c")
                .arg(&self.nodes[0].config)
                .args(args)
                .stdin(Stdio::null())
                .output()?;
            if out.status.success() {
                return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
            }
            if Instant::now() > deadline {
                // The command line holds no secret except for `key import`,
                // whose arguments are not repeated here.
                return Err(other(format!(
                    "garage {} failed: {}",
                    args.first().copied().unwrap_or(""),
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Connects the nodes, assigns and applies the layout, creates the key
    /// and the bucket.
    fn set_up(&mut self) -> std::io::Result<()> {
        let mut ids = Vec::new();
        for node in &self.nodes {
            let deadline = Instant::now() + Duration::from_secs(60);
            let id = loop {
                let out = Command::new(&self.garage)
                    .arg("-c")
                    .arg(&node.config)
                    .args(["node", "id", "-q"])
                    .stdin(Stdio::null())
                    .output()?;
                let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
                if out.status.success() && text.contains('@') {
                    break text;
                }
                if Instant::now() > deadline {
                    return Err(other(format!("garage node at {} never answered", node.rpc)));
                }
                std::thread::sleep(Duration::from_millis(300));
            };
            ids.push(id);
        }
        for id in &ids[1..] {
            self.garage(&["node", "connect", id])?;
        }
        for id in &ids {
            let short = id.split('@').next().unwrap_or(id);
            self.garage(&["layout", "assign", "-z", "dc1", "-c", "1G", short])?;
        }
        self.garage(&["layout", "apply", "--version", "1"])?;
        let (key_id, secret) = (self.key_id.clone(), self.secret.clone());
        self.garage(&[
            "key",
            "import",
            "--yes",
            "-n",
            "mvault-test",
            &key_id,
            &secret,
        ])?;
        self.garage(&["bucket", "create", BUCKET])?;
        self.garage(&[
            "bucket", "allow", "--read", "--write", "--owner", BUCKET, "--key", &key_id,
        ])?;
        self.wait_ready()
    }

    /// Waits until a PUT and a GET through the S3 API succeed.
    fn wait_ready(&self) -> std::io::Result<()> {
        let url = self.url("ready-probe");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let result = crate::create_file(&url, &self.options())
                .and_then(|mut sink| {
                    std::io::Write::write_all(&mut sink, b"ok")?;
                    sink.finish()?;
                    Ok(())
                })
                .and_then(|()| crate::open_file(&url, &self.options()).map(drop));
            match result {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() > deadline => {
                    return Err(other(format!("the S3 API never became ready: {e}")));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(300)),
            }
        }
    }

    /// `s3://mvault-test/<key>`.
    pub fn url(&self, key: &str) -> String {
        format!("s3://{BUCKET}/{key}")
    }

    /// The S3 endpoint (`http://127.0.0.2:PORT`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.s3)
    }

    /// The secret access key (for tests that check it never appears).
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// The `AWS_*` variables for a child process (e.g. `mvault`).
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".into(), self.key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY".into(), self.secret.clone()),
            ("AWS_ENDPOINT_URL".into(), self.endpoint()),
            ("AWS_REGION".into(), REGION.into()),
        ]
    }

    /// [`GarageCluster::env`] with the S3 endpoint of node `i` (wrapping
    /// around), so that "nodes" of a job talk to different servers.
    pub fn env_via(&self, i: usize) -> Vec<(String, String)> {
        let api = self.apis[i % self.apis.len()];
        let mut env = self.env();
        for (k, v) in &mut env {
            if k == "AWS_ENDPOINT_URL" {
                *v = format!("http://{api}");
            }
        }
        env
    }

    /// The same, as options for an in-process store
    /// ([`crate::RemoteStore::open`], [`crate::open_file`]).
    pub fn options(&self) -> Vec<(String, String)> {
        vec![
            ("aws_access_key_id".into(), self.key_id.clone()),
            ("aws_secret_access_key".into(), self.secret.clone()),
            ("aws_endpoint".into(), self.endpoint()),
            ("aws_region".into(), REGION.into()),
        ]
    }

    /// A store rooted at `key`, with the cluster's credentials.
    fn store(&self, key: &str) -> crate::RemoteStore {
        crate::RemoteStore::open(&self.url(key), &self.options())
            .expect("connect to the test cluster")
    }

    /// Keys under `prefix` in the bucket (relative to the bucket), sorted.
    pub fn list(&self, prefix: &str) -> Vec<String> {
        let store = self.store(prefix);
        let mut keys: Vec<String> = store
            .list(&[])
            .expect("list the test bucket")
            .into_iter()
            .map(|(_, meta)| meta.location.to_string())
            .collect();
        keys.sort();
        keys
    }

    /// The bytes of object `key`.
    pub fn get(&self, key: &str) -> Vec<u8> {
        let source = crate::open_file(&self.url(key), &self.options()).expect("open object");
        let mut buf = vec![0u8; source.len().expect("object length") as usize];
        source.read_exact_at(&mut buf, 0).expect("read object");
        buf
    }

    /// Writes object `key`.
    pub fn put(&self, key: &str, bytes: &[u8]) {
        let mut sink = crate::create_file(&self.url(key), &self.options()).expect("create object");
        std::io::Write::write_all(&mut sink, bytes).expect("write object");
        sink.finish().expect("upload object");
    }

    /// Deletes object `key`.
    pub fn delete(&self, key: &str) {
        let store = self.store(key);
        let backend = &store.backend;
        backend
            .block_on(backend.store.delete(&store.root))
            .expect("delete object");
    }

    /// Stops node `i` (a fault test: the others keep serving).
    pub fn stop_node(&mut self, i: usize) {
        if let Some(mut child) = self.nodes.get_mut(i).and_then(|n| n.child.take()) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for GarageCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.stop_node(i);
        }
    }
}
