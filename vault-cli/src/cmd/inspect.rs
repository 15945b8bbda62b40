//! `mvault inspect`: a sealed file's header or a vault's public index, without a key.

use anyhow::Result;
use serde_json::json;
use std::path::Path;

use vault_core::vault::Vault;
use vault_core::{Input, Layout, Source, Stanza, read_header};

use super::{for_each_input, json_items, open_source};
use crate::cli::InspectArgs;
use crate::exit::{Exit, fail};
use crate::report::human_bytes;

pub fn run(args: InspectArgs) -> Result<Exit> {
    let (results, exit) = for_each_input(&args.inputs, describe);
    if args.json {
        let report = crate::json::report("inspect", exit == Exit::Ok, json_items(results), vec![]);
        crate::json::print(&report);
    } else {
        for (file, r) in results {
            let Ok(v) = r else { continue };
            println!("{file}");
            if v["kind"] == "vault" {
                print_vault(&v);
                continue;
            }
            println!(
                "  format:          mvault v{}, AES-256-GCM chunks (suite 1)",
                v["version"]
            );
            println!(
                "  chunk size:      {}",
                human_bytes(v["chunk_size"].as_u64().unwrap_or(0))
            );
            match v["plaintext_bytes"].as_u64() {
                Some(n) => println!("  plaintext size:  {n} bytes ({})", human_bytes(n)),
                None => println!("  plaintext size:  not recorded (sealed from a stream)"),
            }
            println!("  chunks:          {}", v["chunks"]);
            println!("  file id:         {}", v["file_id"].as_str().unwrap_or(""));
            for s in v["stanzas"].as_array().into_iter().flatten() {
                println!(
                    "  key stanza:      {}",
                    s["description"].as_str().unwrap_or("")
                );
            }
            println!("  header:          {} bytes", v["header_bytes"]);
            println!("  sealed size:     {} bytes", v["sealed_bytes"]);
            println!(
                "  length check:    {}",
                v["length_check"].as_str().unwrap_or("")
            );
        }
    }
    Ok(exit)
}

fn print_vault(v: &serde_json::Value) {
    println!("  format:          mvault directory vault (index v1)");
    println!(
        "  vault id:        {}",
        v["vault_id"].as_str().unwrap_or("")
    );
    println!("  generation:      {}", v["generation"]);
    println!(
        "  objects:         {} ({})",
        v["objects"],
        human_bytes(v["sealed_bytes"].as_u64().unwrap_or(0))
    );
    println!(
        "  manifest:        {} bytes, encrypted",
        v["manifest_sealed_bytes"]
    );
    for s in v["stanzas"].as_array().into_iter().flatten() {
        println!("  key stanza:      {}", s["kind"].as_str().unwrap_or(""));
    }
    println!(
        "  signed by:       {}",
        v["signed_by"].as_str().unwrap_or("(unsigned)")
    );
}

fn describe(path: &std::path::Path) -> Result<serde_json::Value> {
    if let Input::Vault(vault) = Input::open(path)? {
        return describe_vault(path, &vault);
    }
    let file = open_source(path)?;
    let (header, header_len) = read_header(&file)?;
    let sealed_len = file.len()?;
    let chunk = header.chunk_size.bytes() as u64;
    let (check, chunks, plaintext) = match header.plaintext_len {
        Some(len) => {
            let layout = Layout::for_plaintext(header_len, chunk, len);
            let check = match sealed_len.cmp(&layout.sealed_len()) {
                std::cmp::Ordering::Equal => "ok".to_string(),
                std::cmp::Ordering::Less => {
                    format!("TRUNCATED: expected {} bytes", layout.sealed_len())
                }
                std::cmp::Ordering::Greater => {
                    format!("TRAILING DATA: expected {} bytes", layout.sealed_len())
                }
            };
            (check, layout.chunks, Some(len))
        }
        None => match Layout::for_sealed_len(header_len, chunk, sealed_len) {
            Ok(layout) => (
                "ok (final chunk is authenticated on open)".into(),
                layout.chunks,
                None,
            ),
            Err(e) => (format!("INVALID: {e}"), 0, None),
        },
    };
    let stanzas: Vec<_> = header.stanzas.iter().map(stanza_json).collect();
    let ok = check.starts_with("ok");
    let value = json!({
        "input": path.display().to_string(),
        "kind": "file",
        "version": vault_core::FORMAT_VERSION,
        "suite": "aes-256-gcm",
        "chunk_size": chunk,
        "plaintext_bytes": plaintext,
        "chunks": chunks,
        "file_id": hex::encode(header.file_id),
        "stanzas": stanzas,
        "header_bytes": header_len,
        "sealed_bytes": sealed_len,
        "length_check": check,
    });
    if !ok {
        // Still describe the file, but fail the command.
        eprintln!(
            "mvault: {}: {}",
            path.display(),
            value["length_check"].as_str().unwrap_or("")
        );
        return Err(fail(Exit::Integrity, "length does not match the header"));
    }
    Ok(value)
}

/// One header stanza as reports give it: `{"kind", "description"}`, and
/// a passphrase stanza's Argon2id costs.
pub fn stanza_json(stanza: &Stanza) -> serde_json::Value {
    match stanza {
        Stanza::Age(body) => json!({
            "kind": "age",
            "description": format!("age recipients ({} bytes)", body.len()),
        }),
        Stanza::Passphrase(p) => json!({
            "kind": "argon2id-passphrase",
            "description": format!(
                "passphrase (Argon2id m={} KiB, t={}, p={})",
                p.params.memory_kib, p.params.time_cost, p.params.parallelism
            ),
            "memory_kib": p.params.memory_kib,
            "time_cost": p.params.time_cost,
            "parallelism": p.params.parallelism,
        }),
        other => {
            json!({ "kind": other.kind_name(), "description": "unknown stanza kind (ignored)" })
        }
    }
}

/// Public facts about a vault, for `inspect`.
fn describe_vault(input: &Path, vault: &Vault) -> Result<serde_json::Value> {
    let index = vault.index();
    let header = vault.keyring_header()?;
    let stanzas: Vec<_> = header
        .stanzas
        .iter()
        .map(super::inspect::stanza_json)
        .collect();
    Ok(json!({
        "input": input.display().to_string(),
        "kind": "vault",
        "vault_id": index.public.vault_id.to_hex(),
        "generation": index.public.generation,
        "objects": index.public.objects.len(),
        "sealed_bytes": index.public.objects.iter().map(|o| o.sealed_len).sum::<u64>(),
        "manifest_sealed_bytes": index.public.manifest_len,
        "stanzas": stanzas,
        "signed_by": index.signature.as_ref().map(|(k, _)| k.to_text()),
    }))
}
