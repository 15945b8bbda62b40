//! The writable mount seals full batches on a thread of the stream's own
//! while the writer fills the next one: files larger than a batch (16
//! MiB) come back intact, also across a close of a duplicate descriptor
//! mid-stream, and a failure of that thread (a full disk) reaches the
//! writer as ENOSPC at a later write, fsync or close.

use std::fs;
use std::io::Write;

use crate::output_mount::{
    cat, listed, mount_writable, unmount, vault, vault_on_small_tmpfs, verify,
};
use crate::util::Env;
use crate::util::mount::fuse_available;
use test_support::pattern;

const MIB: usize = 1 << 20;

/// Writes `bytes` in 1 MiB writes (what `dd bs=1M` and `torch.save` send).
fn write_in_mib(file: &mut fs::File, bytes: &[u8]) -> std::io::Result<()> {
    for piece in bytes.chunks(MIB) {
        file.write_all(piece)?;
    }
    Ok(())
}

/// Over two batches with an odd tail, a close of a duplicate descriptor
/// after the first batch went to the sealing thread (a flush mid-stream),
/// and a file that ends exactly on a batch boundary: all read back
/// byte for byte after the unmount, and the vault verifies.
#[test]
fn files_sealed_behind_the_writer_read_back_intact() {
    if !fuse_available() {
        return;
    }
    let env = Env::new();
    let v = vault(&env);
    let (guard, mnt) = mount_writable(&env, &v, &[]);
    let odd = pattern(15, 41 * MIB + 123);
    let mut file = fs::File::create(mnt.join("odd.bin")).unwrap();
    write_in_mib(&mut file, &odd[..20 * MIB]).unwrap();
    drop(file.try_clone().unwrap()); // close(2) of a copy: a FUSE flush
    write_in_mib(&mut file, &odd[20 * MIB..]).unwrap();
    file.sync_all().unwrap();
    drop(file);
    let even = pattern(16, 32 * MIB);
    let mut file = fs::File::create(mnt.join("even.bin")).unwrap();
    write_in_mib(&mut file, &even).unwrap();
    drop(file);
    unmount(&env, guard);
    assert!(cat(&env, &v, "odd.bin") == odd, "odd.bin differs");
    assert!(cat(&env, &v, "even.bin") == even, "even.bin differs");
    verify(&env, &v);
}

/// 17 MiB into a vault on an 8 MiB tmpfs: the first batch fails on the
/// sealing thread after its write was answered; the writer still gets
/// ENOSPC (at a later write or at fsync), nothing half-written is
/// committed, and the mount goes on.
#[test]
fn enospc_while_sealing_behind_reaches_the_writer() {
    if !fuse_available() || !rustix::process::geteuid().is_root() {
        return;
    }
    let env = Env::new();
    let test = "enospc_while_sealing_behind_reaches_the_writer";
    let Some((_tmpfs, v, spill_arg)) = vault_on_small_tmpfs(&env, test) else {
        return;
    };
    let (guard, mnt) = mount_writable(&env, &v, &["--spill-dir", &spill_arg]);
    let mut file = fs::File::create(mnt.join("huge.bin")).unwrap();
    let failed = write_in_mib(&mut file, &vec![7u8; 17 * MIB])
        .and_then(|()| file.sync_all())
        .expect_err("17 MiB into 8 MiB succeeded");
    let enospc = rustix::io::Errno::NOSPC.raw_os_error();
    assert_eq!(failed.raw_os_error(), Some(enospc), "{failed}");
    drop(file);
    fs::write(mnt.join("small.txt"), b"fits").unwrap();
    unmount(&env, guard);
    verify(&env, &v);
    assert_eq!(cat(&env, &v, "a.txt"), b"kept");
    assert_eq!(cat(&env, &v, "small.txt"), b"fits");
    if listed(&env, &v).contains(&"huge.bin".to_string()) {
        assert!(cat(&env, &v, "huge.bin").is_empty());
    }
}
