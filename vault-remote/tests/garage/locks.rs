//! The lock path against the real 3-node Garage cluster: the probe finds
//! that Garage ignores both conditions; a lock object excludes a second
//! writer (which backs off and deletes its own), is refreshed while held
//! (it outlives the stale timeout), lets a waiting writer in once
//! released, is reported lost when removed behind its holder's back, and
//! a dead writer's lock goes stale, is ignored, listed as stale and
//! removed.

use std::io::ErrorKind;
use std::time::Duration;

use vault_remote::RemoteStore;
use vault_remote::lock::{self, HeldLock, LockConfig};
use vault_remote::probe::Conditional;
use vault_remote::testing::GarageCluster;

const STALE: Duration = Duration::from_secs(3);

fn config(wait: u64) -> LockConfig {
    LockConfig {
        stale: STALE,
        wait: Duration::from_secs(wait),
    }
}

fn refused(r: vault_core::Result<HeldLock>) -> String {
    match r {
        Err(vault_core::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => e.to_string(),
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => panic!("a second writer got the lock"),
    }
}

#[test]
fn garage_lock_objects_exclude_refresh_release_expire_and_are_removed() {
    let Some(cluster) = GarageCluster::start_or_skip("garage_lock_objects") else {
        return;
    };
    let opts = cluster.options();
    let url = cluster.url("locks-test/ds.vault");
    let node_a = RemoteStore::open(&url, &opts).unwrap();
    let node_b = RemoteStore::open(&url, &opts).unwrap();

    // Garage 2.5 answers 200 to both conditions and overwrites.
    assert_eq!(node_a.probe_conditional().unwrap(), Conditional::NONE);

    // A holds the lock; B is refused at once (wait 0) and leaves nothing.
    let a = HeldLock::acquire(&node_a, config(0)).unwrap();
    let e = refused(HeldLock::acquire(&node_b, config(0)));
    assert!(e.contains("another mvault process is writing"), "{e}");
    assert!(e.contains(" pid "), "the holder is named: {e}");
    assert_eq!(lock::list(&node_a, &config(0)).unwrap().len(), 1);

    // Held past the stale timeout, A's lock stays fresh: it is refreshed.
    std::thread::sleep(STALE + Duration::from_secs(1));
    let locks = lock::list(&node_b, &config(0)).unwrap();
    assert_eq!(locks.len(), 1);
    assert!(!locks[0].stale, "{locks:?}");
    a.check("url").unwrap();
    refused(HeldLock::acquire(&node_b, config(0)));

    // B backs off and gets in once A is released.
    let b = std::thread::scope(|s| {
        s.spawn(move || {
            std::thread::sleep(Duration::from_secs(1));
            drop(a);
        });
        HeldLock::acquire(&node_b, config(8)).unwrap()
    });

    // Removed behind its back (as `mvault locks --remove-stale` on another
    // node would), B's lock is lost: B must not switch the index.
    let all = lock::list(&node_a, &config(0)).unwrap();
    assert_eq!(all.len(), 1);
    lock::remove(&node_a, &all).unwrap();
    std::thread::sleep(STALE / 6 * 3);
    let e = b.check("url").unwrap_err().to_string();
    assert!(e.contains("lost its lock"), "{e}");
    drop(b);

    // A dead writer's lock: fresh at first (refused), stale after the
    // timeout (ignored by writers, listed as stale, removed).
    cluster.put(
        "locks-test/ds.vault/locks/dead-writer",
        b"mvault writer lock\nhost gone\npid 1\n",
    );
    refused(HeldLock::acquire(&node_a, config(0)));
    std::thread::sleep(STALE + Duration::from_secs(1));
    let locks = lock::list(&node_a, &config(0)).unwrap();
    assert_eq!(locks.len(), 1);
    assert!(locks[0].stale);
    assert_eq!(locks[0].holder, "host gone pid 1");
    let taken = HeldLock::acquire(&node_a, config(0)).unwrap();
    drop(taken);
    let stale: Vec<_> = lock::list(&node_a, &config(0))
        .unwrap()
        .into_iter()
        .filter(|l| l.stale)
        .collect();
    assert_eq!(lock::remove(&node_a, &stale).unwrap(), 1);
    assert!(lock::list(&node_a, &config(0)).unwrap().is_empty());
    assert!(
        cluster.list("locks-test/ds.vault").is_empty(),
        "no probe or lock keys left"
    );
}
