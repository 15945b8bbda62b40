//! Directory vaults in a hostile filesystem: symlinks and strange entries
//! planted inside the vault folder (issue 10 item 1), an oversized index
//! (item 7), and readers racing a writer (item 8).

use std::fs;
use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::util::vaults::{VaultKeys, vault_keys};
use vault_core::Error;
use vault_core::vault::{self, Vault, WriteOptions, WriteSummary};

/// A vault of `a.txt`, `b.txt` (one pack) beside a `victim` folder holding
/// files that must survive whatever is planted in the vault.
struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    v: PathBuf,
    k: VaultKeys,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let src = root.join("src");
        fs::create_dir_all(&src).unwrap();
        fs::write(src.join("a.txt"), b"alpha").unwrap();
        fs::write(src.join("b.txt"), b"beta").unwrap();
        let victim = root.join("victim");
        fs::create_dir_all(&victim).unwrap();
        fs::write(victim.join("precious.txt"), b"keep me").unwrap();
        fs::write(victim.join("0".repeat(64)), b"keep me too").unwrap();
        let k = vault_keys();
        let v = root.join("v");
        k.seal_new(&src, &v);
        Setup {
            _dir: dir,
            root,
            v,
            k,
        }
    }

    fn victim(&self) -> PathBuf {
        self.root.join("victim")
    }

    fn assert_victim_untouched(&self) {
        let victim = self.victim();
        assert_eq!(fs::read(victim.join("precious.txt")).unwrap(), b"keep me");
        assert_eq!(
            fs::read(victim.join("0".repeat(64))).unwrap(),
            b"keep me too"
        );
        assert_eq!(fs::read_dir(&victim).unwrap().count(), 2, "victim changed");
    }

    fn unlock(&self) -> vault::UnlockedVault {
        Vault::open(&self.v)
            .unwrap()
            .unlock(&self.k.identities)
            .unwrap()
    }

    /// `mvault add V new.txt`, replacing `a.txt` and `b.txt` too so the
    /// old pack becomes garbage.
    fn add(&self) -> vault_core::Result<WriteSummary> {
        let new = self.root.join("new.txt");
        fs::write(&new, b"new file").unwrap();
        let a = self.root.join("a2.txt");
        fs::write(&a, b"alpha, changed").unwrap();
        let b = self.root.join("b2.txt");
        fs::write(&b, b"beta, changed").unwrap();
        vault::add_paths(
            self.unlock(),
            &[
                (new, vec![b"new.txt".to_vec()]),
                (a, vec![b"a.txt".to_vec()]),
                (b, vec![b"b.txt".to_vec()]),
            ],
            None,
            &WriteOptions::default(),
            &|_| {},
        )
    }

    /// The folder of the vault's first object and that object's path.
    fn first_object(&self) -> (PathBuf, PathBuf) {
        let id = Vault::open(&self.v).unwrap().index().public.objects[0].id;
        let path = id.path_in(&self.v);
        (path.parent().unwrap().to_path_buf(), path)
    }

    fn read(&self, name: &str) -> vault_core::Result<Vec<u8>> {
        read_file(&self.unlock(), name)
    }
}

fn read_file(vault: &vault::UnlockedVault, name: &str) -> vault_core::Result<Vec<u8>> {
    let i = vault.find(&[name.as_bytes().to_vec()]).unwrap();
    let mut out = Vec::new();
    vault.file_reader(i)?.copy_to(&mut out)?;
    Ok(out)
}

fn assert_refused(result: vault_core::Result<WriteSummary>, naming: &str) {
    match result {
        Err(Error::UnsafeVault(why)) => assert!(why.contains(naming), "{why}"),
        Err(e) => panic!("expected UnsafeVault naming {naming}, got {e}"),
        Ok(_) => panic!("the write went ahead (expected UnsafeVault naming {naming})"),
    }
}

/// `ln -s ~/victim V/objects/zz; mvault add V f` emptied ~/victim.
#[test]
fn symlinked_object_folder_is_refused_and_its_target_untouched() {
    for name in ["zz", "ab"] {
        let s = Setup::new();
        symlink(s.victim(), s.v.join("objects").join(name)).unwrap();
        assert_refused(s.add(), name);
        s.assert_victim_untouched();
        assert_eq!(s.read("a.txt").unwrap(), b"alpha");
    }
}

/// `V/tmp` as a symlink: temp objects were written into, and garbage
/// collection emptied, its target.
#[test]
fn symlinked_tmp_is_refused_and_its_target_untouched() {
    let s = Setup::new();
    let tmp = s.v.join("tmp");
    if tmp.exists() {
        fs::remove_dir(&tmp).unwrap();
    }
    symlink(s.victim(), &tmp).unwrap();
    assert_refused(s.add(), "tmp");
    s.assert_victim_untouched();
}

/// `V/lock` as a dangling symlink made mvault create its target.
#[test]
fn dangling_lock_symlink_is_refused_and_nothing_created() {
    let s = Setup::new();
    let target = s.root.join("created-by-mvault");
    fs::remove_file(s.v.join("lock")).unwrap();
    symlink(&target, s.v.join("lock")).unwrap();
    assert_refused(s.add(), "lock");
    assert!(
        fs::symlink_metadata(&target).is_err(),
        "the lock symlink was followed"
    );
}

/// Garbage collection deletes only regular files named by object ids: a
/// stray file and a symlink with an object id's name are left and reported.
#[test]
fn garbage_collection_leaves_non_object_files_alone() {
    let s = Setup::new();
    let (folder, _) = s.first_object();
    let prefix = folder.file_name().unwrap().to_str().unwrap().to_owned();
    let stray = folder.join("notes.txt");
    fs::write(&stray, b"mine").unwrap();
    let link = folder.join(format!("{prefix}{}", "1".repeat(62)));
    symlink(s.victim().join("precious.txt"), &link).unwrap();
    let summary = s.add().unwrap();
    assert_eq!(
        fs::read(&stray).unwrap(),
        b"mine",
        "a stray file was deleted"
    );
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "a symlink in objects/ was deleted"
    );
    s.assert_victim_untouched();
    let warned = summary.warnings.join("\n");
    assert!(warned.contains("notes.txt"), "{warned}");
    assert_eq!(s.read("a.txt").unwrap(), b"alpha, changed");
}

/// Readers open the index and every object without following a symlink
/// at any level: a vault whose `objects/xx` or `index` was replaced by a
/// symlink to an identical copy elsewhere is not read through it.
#[test]
fn readers_do_not_follow_symlinks_inside_the_vault() {
    let s = Setup::new();
    let (folder, _) = s.first_object();
    let elsewhere = s.root.join("elsewhere");
    fs::rename(&folder, &elsewhere).unwrap();
    symlink(&elsewhere, &folder).unwrap();
    match s.read("a.txt") {
        Err(Error::VaultCorrupt(why)) => assert!(why.contains("symlink"), "{why}"),
        other => panic!(
            "read through a symlinked objects/xx: {:?}",
            other.map(|_| ())
        ),
    }
    let (_, report) = vault::verify_public(&s.v, None).unwrap();
    assert!(!report.ok(), "verify accepted a symlinked objects/xx");

    let s = Setup::new();
    let index = s.v.join("index");
    fs::rename(&index, s.root.join("index-copy")).unwrap();
    symlink(s.root.join("index-copy"), &index).unwrap();
    match Vault::open(&s.v) {
        Err(Error::VaultCorrupt(why)) => assert!(why.contains("symlink"), "{why}"),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("the index was read through a symlink"),
    }
}

/// An object file replaced by a symlink is neither read nor deleted.
#[test]
fn symlinked_object_file_is_not_read_nor_deleted() {
    let s = Setup::new();
    let (_, object) = s.first_object();
    let copy = s.root.join("object-copy");
    fs::rename(&object, &copy).unwrap();
    symlink(&copy, &object).unwrap();
    assert!(matches!(s.read("a.txt"), Err(Error::VaultCorrupt(_))));
    // A write that leaves that object unreferenced neither follows nor
    // deletes it.
    let _ = s.add();
    assert!(
        fs::symlink_metadata(&object)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(copy.exists());
}

/// Anything but index, objects, tmp, lock (and index temp names) at the
/// root, or anything but two-hex-digit folders in objects/, is refused
/// for writing, naming the entry.
#[test]
fn unexpected_entries_are_refused_for_writing() {
    let s = Setup::new();
    fs::write(s.v.join("notes.txt"), b"x").unwrap();
    assert_refused(s.add(), "notes.txt");
    assert!(s.v.join("notes.txt").exists());

    let s = Setup::new();
    fs::write(s.v.join("objects").join("README"), b"x").unwrap();
    assert_refused(s.add(), "README");
}

/// `objects/xx` or `tmp` owned by another user (who could swap what is
/// inside between a check and a use) is refused for writing.
#[test]
fn folders_owned_by_another_user_are_refused_for_writing() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root to chown");
        return;
    }
    let s = Setup::new();
    let (folder, _) = s.first_object();
    let name = folder.file_name().unwrap().to_str().unwrap().to_owned();
    std::os::unix::fs::chown(&folder, Some(65534), None).unwrap();
    assert_refused(s.add(), &name);

    let s = Setup::new();
    let tmp = s.v.join("tmp");
    fs::create_dir_all(&tmp).unwrap();
    std::os::unix::fs::chown(&tmp, Some(65534), None).unwrap();
    assert_refused(s.add(), "tmp");
}

/// A 3 GiB index (sparse) is refused from its size, before it is read.
#[test]
fn oversized_index_is_refused_before_it_is_read() {
    let s = Setup::new();
    let index = fs::OpenOptions::new()
        .write(true)
        .open(s.v.join("index"))
        .unwrap();
    index.set_len(vault::MAX_INDEX_LEN + 1).unwrap();
    let started = Instant::now();
    match Vault::open(&s.v) {
        Err(Error::VaultCorrupt(why)) => assert!(why.contains("limit"), "{why}"),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("an oversized index was accepted"),
    }
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// A reader that unlocked generation 1 keeps reading it while an `add`
/// commits generation 2 and would delete generation 1's objects: no false
/// "object missing". Garbage left for it is not an "extra" for verify,
/// and the next write with no reader removes it.
#[test]
fn reader_of_an_older_generation_survives_a_commit() {
    let s = Setup::new();
    let reader = s.unlock();
    s.add().unwrap();
    assert_eq!(read_file(&reader, "a.txt").unwrap(), b"alpha");
    assert_eq!(read_file(&reader, "b.txt").unwrap(), b"beta");
    assert_eq!(s.read("a.txt").unwrap(), b"alpha, changed");
    let (_, report) = vault::verify_public(&s.v, None).unwrap();
    assert!(report.ok(), "{:?}", report.failures);
    drop(reader);
    // The next write (no reader now) removes the garbage left aside.
    s.add().unwrap();
    assert_eq!(fs::read_dir(s.v.join("tmp")).unwrap().count(), 0);
}

/// Real tampering is still reported: an object deleted under an unchanged
/// index is "missing".
#[test]
fn a_missing_object_with_an_unchanged_index_is_still_tampering() {
    let s = Setup::new();
    let reader = s.unlock();
    let (_, object) = s.first_object();
    fs::remove_file(&object).unwrap();
    match read_file(&reader, "a.txt") {
        Err(Error::VaultCorrupt(why)) => assert!(why.contains("missing"), "{why}"),
        other => panic!("expected a missing object, got {:?}", other.map(|_| ())),
    }
}
