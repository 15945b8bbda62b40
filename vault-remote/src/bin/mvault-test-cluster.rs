//! `mvault-test-cluster serve STATE_DIR`: runs the 3-node Garage test
//! cluster of `vault_remote::testing` for people and CI (driven by
//! `scripts/s3-test-cluster.sh`). Once the cluster answers, it writes
//! `STATE_DIR/env` (0600: `export AWS_*=…` lines and `MVAULT_TEST_BUCKET`,
//! for `eval`), then waits until `STATE_DIR/stop` appears, stops every
//! node, removes the cluster's folder and `env`, and exits.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::Duration;

use vault_remote::testing::{BUCKET, GarageCluster};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some("serve"), Some(state)) = (args.get(1).map(String::as_str), args.get(2)) else {
        eprintln!("usage: mvault-test-cluster serve STATE_DIR");
        std::process::exit(2);
    };
    let state = PathBuf::from(state);
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
