//! `mvault ls VAULT`: names, sizes, modes of a directory vault.

use anyhow::Result;
use serde_json::json;
use vault_core::vault::EntryKind;

use super::vault::unlock;
use crate::cli::LsArgs;
use crate::exit::Exit;
use crate::report::printable;

pub fn run(args: LsArgs) -> Result<Exit> {
    let unlocked = unlock(&args.vault, &args.identities)?;
    let manifest = unlocked.manifest();
    let mut rows: Vec<(String, &vault_core::vault::Entry)> = manifest
        .entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            (
                String::from_utf8_lossy(unlocked.entry_path(i)).into_owned(),
                e,
            )
        })
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    if args.json {
        let items: Vec<_> = rows
            .iter()
            .map(|(path, e)| match e.kind {
                EntryKind::Dir => json!({
                    "path": path, "type": "dir", "mode": format!("{:o}", e.mode), "mtime": e.mtime,
                }),
                EntryKind::File { size, blake3, .. } => json!({
                    "path": path, "type": "file", "plaintext_bytes": size, "mode": format!("{:o}", e.mode),
                    "mtime": e.mtime, "blake3": blake3.to_hex(),
                }),
            })
            .collect();
        let item = json!({
            "input": args.vault.display().to_string(),
            "kind": "vault",
            "ok": true,
            "generation": manifest.generation,
            "files": manifest.file_count(),
            "plaintext_bytes": manifest.total_bytes(),
            "entries": items,
        });
        crate::json::print(&crate::json::report("ls", true, vec![item], vec![]));
        return Ok(Exit::Ok);
    }
    for (path, e) in rows {
        let path = printable(&path);
        match e.kind {
            EntryKind::Dir => println!("d{}  {:>14}  {path}/", mode_string(e.mode), "-"),
            EntryKind::File { size, .. } => {
                println!("-{}  {size:>14}  {path}", mode_string(e.mode))
            }
        }
    }
    Ok(Exit::Ok)
}

fn mode_string(mode: u32) -> String {
    let mut s = String::with_capacity(9);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}
