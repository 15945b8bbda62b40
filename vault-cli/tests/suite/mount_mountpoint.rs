//! Where `mount` and `run` agree to mount, and what `umount` says: a
//! symlinked mountpoint, one another user could swap or fill, a non-empty
//! one and one that is already a mount point are refused with a clear
//! message; `umount` does not follow links, says when nothing is mounted
//! and confirms what it unmounted.
//!
//! Needs /dev/fuse and fusermount3; skipped with a message where they are
//! missing, unless MVAULT_REQUIRE_E2E=1.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::util::mount::{MountGuard, READY_TIMEOUT, fuse_available, is_mounted};
use crate::util::{EXIT_REFUSED, Env, pattern, stderr_of};

const EXIT_NOT_MOUNTED: i32 = 10;

/// One small sealed file.
fn sealed_fixture(env: &Env) -> PathBuf {
    env.keygen();
    let plain = env.write("f.bin", &pattern(3, 100_000));
    env.seal_small_chunks(&plain)
}

/// `mvault run --mount SEALED:MNT -- true`, expecting refusal (exit 7) with
/// `needle` in the message; nothing gets mounted.
fn run_is_refused(env: &Env, sealed: &Path, mnt: &Path, needle: &str) {
    let out = env
        .cmd()
        .args(["run", "--mount"])
        .arg(format!("{}:{}", sealed.display(), mnt.display()))
        .args(["--", "true"])
        .timeout(READY_TIMEOUT)
        .assert()
        .code(EXIT_REFUSED);
    let err = stderr_of(&out);
    assert!(err.contains(needle), "{needle:?} not in: {err}");
    assert!(!is_mounted(mnt));
}

/// `mvault mount SEALED MNT` (background), expecting refusal likewise.
/// (The caller holds a [`MountGuard`] in case it mounts after all.)
fn mount_is_refused(env: &Env, sealed: &Path, mnt: &Path, needle: &str) {
    let out = env
        .cmd()
        .arg("mount")
        .arg(sealed)
        .arg(mnt)
        .timeout(READY_TIMEOUT)
        .assert()
        .code(EXIT_REFUSED);
    let err = stderr_of(&out);
    assert!(err.contains(needle), "{needle:?} not in: {err}");
}

#[test]
fn symlinked_mountpoint_is_refused_by_mount_and_run() {
    if !fuse_available() {
        return;
    }
    let env = Env::new();
    let sealed = sealed_fixture(&env);
    let target = env.path("target");
    fs::create_dir(&target).unwrap();
    let link = env.path("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let _guards = [MountGuard::new(&link), MountGuard::new(&target)];
    run_is_refused(&env, &sealed, &link, "is a symbolic link");
    mount_is_refused(&env, &sealed, &link, "is a symbolic link");
    assert!(!is_mounted(&target), "nothing mounted on the link target");
    assert!(
        link.is_symlink() && target.is_dir(),
        "both left as they were"
    );
}

#[test]
fn mountpoint_another_user_could_swap_is_refused() {
    if !fuse_available() {
        return;
    }
    let env = Env::new();
    let sealed = sealed_fixture(&env);
    // World-writable without the sticky bit.
    let open = env.path("open");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    let _guard = MountGuard::new(&open);
    run_is_refused(&env, &sealed, &open, "writable by others");
    mount_is_refused(&env, &sealed, &open, "writable by others");
    // A folder above it that others can write to (no sticky bit).
    let inner = open.join("mnt");
    fs::create_dir(&inner).unwrap();
    run_is_refused(&env, &sealed, &inner, "the folder");
    // Sticky (like /tmp) with an entry of ours: fine.
    fs::set_permissions(&open, fs::Permissions::from_mode(0o1777)).unwrap();
    env.cmd()
        .args(["-q", "run", "--mount"])
        .arg(format!("{}:{}", sealed.display(), inner.display()))
        .args(["--", "test", "-s"])
        .arg(inner.join("f.bin"))
        .timeout(READY_TIMEOUT)
        .assert()
        .success();
    // Owned by another user (root only can make one).
    if rustix::process::geteuid().is_root() {
        let theirs = env.path("theirs");
        fs::create_dir(&theirs).unwrap();
        std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
        run_is_refused(&env, &sealed, &theirs, "belongs to uid 65534");
        // Ours, but in a folder of another user's: they may rename it.
        let below_theirs = theirs.join("mnt");
        fs::create_dir(&below_theirs).unwrap();
        run_is_refused(&env, &sealed, &below_theirs, "the folder");
        // Sticky, but the entry in it is another user's: they may rename it.
        let sticky_theirs = open.join("theirs");
        fs::create_dir(&sticky_theirs).unwrap();
        std::os::unix::fs::chown(&sticky_theirs, Some(65534), Some(65534)).unwrap();
        run_is_refused(&env, &sealed, &sticky_theirs, "belongs to uid 65534");
    }
}

#[test]
fn nonempty_mountpoint_is_refused_unless_nonempty() {
    if !fuse_available() {
        return;
    }
    let env = Env::new();
    let sealed = sealed_fixture(&env);
    let mnt = env.path("mnt");
    fs::create_dir(&mnt).unwrap();
    fs::write(mnt.join("hidden.txt"), b"mine").unwrap();
    let _guard = MountGuard::new(&mnt);
    run_is_refused(&env, &sealed, &mnt, "is not empty");
    mount_is_refused(&env, &sealed, &mnt, "--nonempty");
    env.cmd()
        .args(["-q", "run", "--nonempty", "--mount"])
        .arg(format!("{}:{}", sealed.display(), mnt.display()))
        .args(["--", "test", "-s"])
        .arg(mnt.join("f.bin"))
        .timeout(READY_TIMEOUT)
        .assert()
        .success();
    assert_eq!(fs::read(mnt.join("hidden.txt")).unwrap(), b"mine");
}

#[test]
fn mounting_on_a_mount_point_is_refused_and_umount_reports_what_it_did() {
    if !fuse_available() {
        return;
    }
    let env = Env::new();
    let sealed = sealed_fixture(&env);
    let mnt = env.path("mnt");
    fs::create_dir(&mnt).unwrap();
    // Nothing mounted yet: a distinct exit code and a plain message.
    let out = env
        .cmd()
        .arg("umount")
        .arg(&mnt)
        .assert()
        .code(EXIT_NOT_MOUNTED);
    let err = stderr_of(&out);
    assert!(err.contains("is not mounted"), "{err}");
    assert!(!err.contains("os error"), "{err}");

    let guard = MountGuard::new(&mnt);
    let out = env
        .cmd()
        .arg("mount")
        .arg(&sealed)
        .arg(&mnt)
        .timeout(READY_TIMEOUT)
        .assert()
        .success();
    let err = stderr_of(&out);
    let canonical = fs::canonicalize(&mnt).unwrap();
    assert!(
        err.contains(&format!("mvault umount {}", canonical.display())),
        "the hint names the mount point: {err}"
    );
    assert!(!err.contains("MOUNTPOINT"), "{err}");
    assert!(is_mounted(&mnt));

    // A second mount on top is refused, by mount and by run.
    mount_is_refused(&env, &sealed, &mnt, "already a mount point");
    let out = env
        .cmd()
        .args(["run", "--nonempty", "--mount"])
        .arg(format!("{}:{}", sealed.display(), mnt.display()))
        .args(["--", "true"])
        .timeout(READY_TIMEOUT)
        .assert()
        .code(EXIT_REFUSED);
    assert!(stderr_of(&out).contains("already a mount point"));
    assert!(is_mounted(&mnt), "the first mount is untouched");

    // umount does not follow a link to the mount.
    let link = env.path("link");
    std::os::unix::fs::symlink(&mnt, &link).unwrap();
    let out = env
        .cmd()
        .arg("umount")
        .arg(&link)
        .assert()
        .code(EXIT_REFUSED);
    assert!(stderr_of(&out).contains("symbolic link"));
    assert!(is_mounted(&mnt));

    let out = env.cmd().arg("umount").arg(&mnt).assert().success();
    let err = stderr_of(&out);
    assert!(
        err.contains(&format!("unmounted {}", canonical.display())),
        "{err}"
    );
    assert!(!is_mounted(&mnt));
    let out = env.cmd().args(["-q", "umount"]).arg(&mnt).assert();
    assert_eq!(out.get_output().status.code(), Some(EXIT_NOT_MOUNTED));
    drop(guard);
}
