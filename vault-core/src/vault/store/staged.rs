//! A new local vault, built in a hidden sibling folder and renamed into
//! place once its first index is written, so that a half-written vault
//! never appears under its name (and a crash leaves only a hidden
//! `.NAME.*.mvault-tmp` folder beside it).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::VaultDir;
use crate::error::{Error, Result};
use crate::vault::fsutil;

/// A vault being created at `target`, in the hidden folder `work`.
pub(crate) struct StagedVault {
    work: PathBuf,
    target: PathBuf,
    dir: VaultDir,
}

impl StagedVault {
    /// Creates the hidden folder beside `target` and opens it as a store.
    pub(crate) fn create(target: &Path) -> Result<Self> {
        let work = hidden_sibling(target)?;
        match VaultDir::open(&work) {
            Ok(dir) => Ok(StagedVault {
                work,
                target: target.to_path_buf(),
                dir,
            }),
            Err(e) => {
                let _ = fs::remove_dir_all(&work);
                Err(e)
            }
        }
    }

    /// The store to write the new vault into.
    pub(crate) fn store(&self) -> &VaultDir {
        &self.dir
    }

    /// Renames the finished vault into place (refusing to replace anything
    /// that appeared at the target meanwhile) and fsyncs the parent.
    pub(crate) fn publish(self) -> Result<()> {
        let StagedVault { work, target, dir } = self;
        drop(dir);
        fs::rename(&work, &target).map_err(|e| {
            let _ = fs::remove_dir_all(&work);
            if e.kind() == io::ErrorKind::AlreadyExists
                || e.kind() == io::ErrorKind::DirectoryNotEmpty
            {
                Error::Io(io::Error::new(
                    e.kind(),
                    format!("{} appeared while sealing", target.display()),
                ))
            } else {
                Error::Io(e)
            }
        })?;
        let _ = fsutil::sync_dir(parent_of(&target));
        Ok(())
    }

    /// Removes the unfinished vault.
    pub(crate) fn discard(self) {
        let StagedVault { work, dir, .. } = self;
        drop(dir);
        let _ = fs::remove_dir_all(&work);
    }
}

/// A fresh hidden folder beside `vault` to build a new vault in.
fn hidden_sibling(vault: &Path) -> Result<PathBuf> {
    let name = vault
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "vault".into());
    let dir = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".mvault-tmp")
        .tempdir_in(parent_of(vault))?;
    Ok(dir.keep())
}

/// The folder that holds `path` ("." for a bare name).
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}
