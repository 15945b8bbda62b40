//! What a vault write will do, decided before anything is sealed: which
//! files are added, updated, kept and removed. Re-sealing a folder keeps
//! the vault's files that the folder no longer has unless removal was asked
//! for (`--delete`, as rsync does), `rm` takes paths out, and a dry run
//! stops here with the plan.

use std::collections::BTreeMap;

use super::write::{Content, OldContents, Planned};
use crate::error::{Error, Result};

/// Path → planned entry, in path order (parents before children).
pub(super) type Tree = BTreeMap<Vec<u8>, Planned>;

/// Puts back into `tree` the entries of the old vault that the scan did not
/// see, where they still fit: an entry is kept only when its parent is a
/// folder in `tree` (a scanned file that replaced an old folder drops that
/// folder's old contents).
pub(super) fn keep_missing(tree: &mut Tree, old: &OldContents) {
    let mut paths: Vec<&Vec<u8>> = old.keys().collect();
    paths.sort();
    for path in paths {
        if tree.contains_key(path) {
            continue;
        }
        let parent_is_folder = match path.iter().rposition(|&b| b == b'/') {
            None => true,
            Some(slash) => matches!(
                tree.get(&path[..slash]),
                Some(Planned {
                    content: Content::Dir,
                    ..
                })
            ),
        };
        if parent_is_folder {
            tree.insert(path.clone(), old[path].0.clone());
        }
    }
}

/// Removes `paths` (files, or folders with everything below) from `tree`.
/// A path that is not in the vault is an error naming it.
pub(super) fn remove_paths(tree: &mut Tree, paths: &[Vec<Vec<u8>>]) -> Result<()> {
    for path in paths {
        if path.is_empty() {
            return Err(Error::InvalidArgument(
                "refusing to remove the vault root; remove the vault folder itself".into(),
            ));
        }
        let joined = path.join(&b'/');
        if !tree.contains_key(&joined) {
            return Err(Error::InvalidArgument(format!(
                "no {:?} in the vault",
                String::from_utf8_lossy(&joined)
            )));
        }
        remove_subtree(tree, &joined);
    }
    Ok(())
}

/// Removes `path` and, when it is a folder, everything below it.
pub(super) fn remove_subtree(tree: &mut Tree, path: &[u8]) {
    let below: Vec<Vec<u8>> = tree
        .range(path.to_vec()..)
        .map(|(k, _)| k.clone())
        .take_while(|k| k.starts_with(path))
        .filter(|k| k.as_slice() == path || k.get(path.len()) == Some(&b'/'))
        .collect();
    for k in below {
        tree.remove(&k);
    }
}

/// Files of a write, by what happens to them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Paths new in the vault.
    pub added: Vec<String>,
    /// Paths whose content changed.
    pub updated: Vec<String>,
    /// Paths of the old vault that the new one no longer has.
    pub removed: Vec<String>,
    /// Plaintext bytes to seal.
    pub bytes_to_seal: u64,
}

/// Compares the planned tree with the old vault (files only).
pub(super) fn plan(tree: &Tree, old: &OldContents) -> Plan {
    let is_file = |p: &Planned| !matches!(p.content, Content::Dir);
    let mut plan = Plan::default();
    for (path, p) in tree {
        if let Content::New { size, .. } = p.content {
            plan.bytes_to_seal += size;
            match old.get(path) {
                Some((o, ())) if is_file(o) => plan.updated.push(display(path)),
                _ => plan.added.push(display(path)),
            }
        }
    }
    let mut removed: Vec<&Vec<u8>> = old
        .iter()
        .filter(|(path, (o, ()))| is_file(o) && !tree.get(*path).is_some_and(is_file))
        .map(|(path, _)| path)
        .collect();
    removed.sort();
    plan.removed = removed.into_iter().map(|p| display(p)).collect();
    plan
}

/// A vault path for people: as is when UTF-8, escaped otherwise.
fn display(path: &[u8]) -> String {
    match std::str::from_utf8(path) {
        Ok(text) => text.to_string(),
        Err(_) => path.escape_ascii().to_string(),
    }
}
