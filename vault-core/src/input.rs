//! File-vs-vault dispatch: what a path given to a tool holds (standard
//! input, a sealed file, a directory vault, or a folder of sealed files),
//! so that each command asks once instead of testing for a vault itself.

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::vault::Vault;

/// What a path names, decided without reading any key material.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// `-`: standard input (or output).
    Stdin,
    /// A sealed file, or any path that is neither a vault nor a folder
    /// (including one that does not exist: opening it reports that).
    File,
    /// A directory vault (a folder with an index).
    Vault,
    /// A folder that is not a vault (e.g. a folder of sealed files).
    Folder,
}

impl InputKind {
    /// Classifies `path` (a stat or two, no reads).
    pub fn of(path: &Path) -> InputKind {
        if path == Path::new("-") {
            InputKind::Stdin
        } else if Vault::is_vault(path) {
            InputKind::Vault
        } else if path.is_dir() {
            InputKind::Folder
        } else {
            InputKind::File
        }
    }

    /// The name reports use: `"file"` (standard input is a stream of a
    /// file), `"vault"` or `"folder"`.
    pub fn name(self) -> &'static str {
        match self {
            InputKind::Stdin | InputKind::File => "file",
            InputKind::Vault => "vault",
            InputKind::Folder => "folder",
        }
    }
}

/// An input opened as far as it can be without a key: a vault's public
/// index is read and checked; a file or folder is named, for the caller to
/// open the way it needs (positional reads, a stream, each `*.mvlt` inside).
pub enum Input {
    /// `-`: standard input.
    Stdin,
    /// A sealed file.
    File(PathBuf),
    /// A directory vault with its index read (and its readers' lock held).
    Vault(Box<Vault>),
    /// A folder that is not a vault.
    Folder(PathBuf),
}

impl Input {
    /// Opens `path` as [`InputKind::of`] classifies it.
    pub fn open(path: &Path) -> Result<Input> {
        Ok(match InputKind::of(path) {
            InputKind::Stdin => Input::Stdin,
            InputKind::File => Input::File(path.to_path_buf()),
            InputKind::Vault => Input::Vault(Box::new(Vault::open(path)?)),
            InputKind::Folder => Input::Folder(path.to_path_buf()),
        })
    }

    /// What this input is.
    pub fn kind(&self) -> InputKind {
        match self {
            Input::Stdin => InputKind::Stdin,
            Input::File(_) => InputKind::File,
            Input::Vault(_) => InputKind::Vault,
            Input::Folder(_) => InputKind::Folder,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_classified_without_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.mvlt");
        std::fs::write(&file, b"not even sealed").unwrap();
        assert_eq!(InputKind::of(Path::new("-")), InputKind::Stdin);
        assert_eq!(InputKind::of(&file), InputKind::File);
        assert_eq!(InputKind::of(&dir.path().join("missing")), InputKind::File);
        assert_eq!(InputKind::of(dir.path()), InputKind::Folder);
        assert!(matches!(Input::open(&file), Ok(Input::File(p)) if p == file));
        assert_eq!(Input::open(dir.path()).unwrap().kind(), InputKind::Folder);
        assert_eq!(InputKind::Stdin.name(), "file");
    }
}
