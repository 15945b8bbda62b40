//! The conditional path, in-process: the probe tells a store that honours
//! `If-None-Match`/`If-Match` (object_store's `InMemory`; `LocalFileSystem`
//! for create only) from one that refuses them and from one that accepts
//! and ignores them (an [`Interposer`] playing Garage 2.5); a writer on a
//! store that honours them takes no lock, and loses — changing nothing,
//! leaving no objects — when another node replaces the index in the gap
//! between its re-read and its PUT.

use std::io::Write;
use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use vault_core::vault::{Blake3Digest, INDEX_MAGIC, IndexExpect, ObjectId, Store, StoreWriter};
use vault_remote::RemoteStore;
use vault_remote::interpose::Interposer;
use vault_remote::probe::Conditional;
use vault_remote::writer::RemoteWriter;

use super::assert_changed;

/// Index-like bytes (the magic, then `text`): what the store checks.
fn index(text: &str) -> Vec<u8> {
    [&INDEX_MAGIC[..], text.as_bytes()].concat()
}

fn listing(store: &RemoteStore) -> Vec<String> {
    store.keys().unwrap()
}

#[test]
fn probe_tells_honoured_refused_and_ignored_conditions_apart() {
    let memory = Interposer::new(Arc::new(InMemory::new()), false);
    let store = memory.vault("v", "mem://b/v");
    assert_eq!(
        store.probe_conditional().unwrap(),
        Conditional {
            create: true,
            update: true
        }
    );
    assert!(listing(&store).is_empty(), "the probe key is deleted");

    let dir = tempfile::tempdir().unwrap();
    let local = Interposer::new(
        Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap()),
        false,
    );
    let store = local.vault("v", "file:///tmp/v");
    assert_eq!(
        store.probe_conditional().unwrap(),
        Conditional {
            create: true,
            update: false
        },
        "LocalFileSystem honours create-if-absent and refuses Update (NotImplemented)"
    );

    // Accepts both headers and overwrites, as Garage 2.5.0 does: caught.
    let liar = Interposer::new(Arc::new(InMemory::new()), true);
    let store = liar.vault("v", "mem://b/v");
    assert_eq!(store.probe_conditional().unwrap(), Conditional::NONE);
}

#[test]
fn conditional_update_names_the_generation_read_and_takes_no_lock() {
    let memory = Interposer::new(Arc::new(InMemory::new()), false);
    let seed = memory.vault("v", "mem://b/v");
    {
        let w = RemoteWriter::begin(&seed).unwrap();
        assert!(!w.holds_lock(), "create is honoured: no lock object");
        w.replace_index(&index("generation 1"), IndexExpect::Absent)
            .unwrap();
    }
    let node_a = memory.vault("v", "mem://b/v");
    let read = Blake3Digest::of(&node_a.read_index().unwrap());
    let writer = RemoteWriter::begin(&node_a).unwrap();
    assert!(!writer.holds_lock(), "update is honoured: no lock object");
    let id = ObjectId::from([7u8; 32]);
    let (mut sink, _pending) = writer.create_object(&id).unwrap();
    sink.write_all(b"an object of generation 2").unwrap();
    sink.finish().unwrap();
    assert_eq!(listing(&node_a).len(), 2, "index and the new object");
    // Another node rewrites the index (the very same bytes: only its ETag
    // changes) between this writer's re-read and its PUT. If-Match on the
    // ETag read catches what a re-read of the bytes cannot.
    memory.race_next_index_put(index("generation 1"));
    let e = writer
        .replace_index(&index("generation 2"), IndexExpect::Version(&read))
        .unwrap_err();
    assert_changed(e);
    drop(writer);
    assert_eq!(node_a.read_index().unwrap(), index("generation 1"));
    assert_eq!(
        listing(&node_a),
        ["index"],
        "the loser's object is deleted, no lock was ever written"
    );
    // Built on the current generation, the same write goes through.
    let node_b = memory.vault("v", "mem://b/v");
    let now = Blake3Digest::of(&node_b.read_index().unwrap());
    let writer = RemoteWriter::begin(&node_b).unwrap();
    writer
        .replace_index(&index("generation 2"), IndexExpect::Version(&now))
        .unwrap();
    drop(writer);
    assert_eq!(node_b.read_index().unwrap(), index("generation 2"));
}

#[test]
fn conditional_create_on_the_local_filesystem_store_has_one_winner() {
    let dir = tempfile::tempdir().unwrap();
    let local = Interposer::new(
        Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap()),
        false,
    );
    let store = local.vault("new.vault", "file:///tmp/new.vault");
    let writer = RemoteWriter::begin(&store).unwrap();
    assert!(!writer.holds_lock(), "create-if-absent is honoured");
    // Another node creates the vault after this writer found none.
    local.race_next_index_put(index("the other node's vault"));
    let e = writer
        .replace_index(&index("this node's vault"), IndexExpect::Absent)
        .unwrap_err();
    assert_changed(e);
    drop(writer);
    assert_eq!(store.read_index().unwrap(), index("the other node's vault"));
    // An update on the same store takes the lock path (Update is not
    // implemented there).
    let writer = RemoteWriter::begin(&store).unwrap();
    assert!(writer.holds_lock());
    drop(writer);
    assert_eq!(listing(&store), ["index"], "the lock is released");
}

#[test]
fn a_store_that_ignores_conditions_gets_the_lock_path() {
    let liar = Interposer::new(Arc::new(InMemory::new()), true);
    let store = liar.vault("v", "mem://liar/v");
    let writer = RemoteWriter::begin(&store).unwrap();
    assert!(writer.holds_lock());
    let keys = listing(&store);
    assert_eq!(keys.len(), 1);
    assert!(keys[0].starts_with("locks/"), "{keys:?}");
    drop(writer);
    assert!(listing(&store).is_empty());
}
