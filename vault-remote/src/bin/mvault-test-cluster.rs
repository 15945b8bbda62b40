//! `mvault-test-cluster serve STATE_DIR`: runs the 3-node Garage test
//! cluster of `vault_remote::testing` for people and CI (driven by
//! `scripts/s3-test-cluster.sh`). Once the cluster answers, it writes
//! `STATE_DIR/env` (0600: `export AWS_*=…` lines and `MVAULT_TEST_BUCKET`,
//! for `eval`), then waits until `STATE_DIR/stop` appears, stops every
//! node, removes the cluster's folder and `env`, and exits.
//!
//! `mvault-test-cluster get URL` / `put URL` copy one object's raw bytes to
//! standard output / from standard input, and `list URL` prints every key
//! under a prefix (relative, one a line; credentials from the
//! environment), so that tests in other languages (python/tests) can
//! tamper with what is stored.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::Duration;

use vault_remote::testing::{BUCKET, GarageCluster};

const USAGE: &str = "usage: mvault-test-cluster serve STATE_DIR | get URL | put URL | list URL";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(command), Some(arg)) = (args.get(1).map(String::as_str), args.get(2)) else {
        eprintln!("{USAGE}");
        std::process::exit(2);
    };
    match command {
        "serve" => serve(&PathBuf::from(arg)),
        "get" | "put" | "list" => {
            vault_remote::install();
            if let Err(e) = copy_object(command, arg) {
                eprintln!("mvault-test-cluster: {command} {arg}: {e}");
                std::process::exit(1);
            }
        }
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    }
}

/// `get`: the object at `url` to standard output; `put`: standard input
/// to the object at `url`; `list`: the keys under the prefix `url`.
fn copy_object(command: &str, url: &str) -> vault_core::Result<()> {
    use std::io::{Read, Write};
    use vault_core::Source;
    if command == "list" {
        for key in vault_remote::RemoteStore::open(url, &[])?.keys()? {
            println!("{key}");
        }
    } else if command == "get" {
        let source = vault_remote::open_file(url, &[])?;
        let mut buf = vec![0u8; source.len()? as usize];
        source.read_exact_at(&mut buf, 0)?;
        std::io::stdout().write_all(&buf)?;
    } else {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf)?;
        let mut sink = vault_remote::create_file(url, &[])?;
        sink.write_all(&buf)?;
        sink.finish()?;
    }
    Ok(())
}

/// Runs the cluster until `STATE_DIR/stop` appears.
fn serve(state: &std::path::Path) {
    let state = state.to_path_buf();
    let Some(garage) = GarageCluster::binary() else {
        eprintln!(
            "mvault-test-cluster: no garage binary (run scripts/setup-garage.sh, or set MVAULT_GARAGE)"
        );
        std::process::exit(1);
    };
    let cluster = match GarageCluster::start(&garage, 3) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mvault-test-cluster: cannot start the cluster: {e}");
            std::process::exit(1);
        }
    };
    let env_file = state.join("env");
    let written = (|| -> std::io::Result<()> {
        let tmp = state.join("env.tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        for (k, v) in cluster.env() {
            writeln!(f, "export {k}='{v}'")?;
        }
        writeln!(f, "export MVAULT_TEST_BUCKET='{BUCKET}'")?;
        f.sync_all()?;
        std::fs::rename(&tmp, &env_file)
    })();
    if let Err(e) = written {
        eprintln!(
            "mvault-test-cluster: cannot write {}: {e}",
            env_file.display()
        );
        std::process::exit(1);
    }
    eprintln!("mvault-test-cluster: ready at {}", cluster.endpoint());
    while !state.join("stop").exists() {
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(cluster);
    let _ = std::fs::remove_file(&env_file);
    eprintln!("mvault-test-cluster: stopped");
}
