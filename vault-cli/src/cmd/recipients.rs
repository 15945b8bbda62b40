//! `mvault recipients FILE|VAULT...`: who can open a sealed file or a vault,
//! read from the header (no key needed): each age stanza's kind (X25519,
//! ssh-ed25519 with its key tag, plugin kinds) and any passphrase. X25519
//! stanzas are anonymous by design, so their keys cannot be listed; a
//! vault's keyring records its recipient strings, shown with -i.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use vault_core::{Header, Input, Stanza, read_header};

use super::{for_each_input, json_items, open_source};
use crate::cli::RecipientsArgs;
use crate::exit::Exit;

pub fn run(args: RecipientsArgs) -> Result<Exit> {
    let (results, exit) = for_each_input(&args.inputs, |input| describe(input, &args));
    let items: Vec<Value> = json_items(results);
    if args.json {
        let report = crate::json::report("recipients", exit == Exit::Ok, items, vec![]);
        crate::json::print(&report);
    } else {
        for item in items.iter().filter(|i| i.get("error").is_none()) {
            print_human(item);
        }
    }
    Ok(exit)
}

fn describe(input: &Path, args: &RecipientsArgs) -> Result<Value> {
    if let Input::Vault(vault) =
        Input::open(input).with_context(|| format!("cannot open {}", input.display()))?
    {
        let header = vault.keyring_header()?;
        let recorded = if args.identities.is_empty() {
            Value::Null
        } else {
            let unlocked = super::vault::unlock(input, &args.identities)?;
            let info = unlocked.keyring_info();
            json!({ "recipients": info.recipients, "passphrase": info.passphrase })
        };
        return Ok(json!({
            "input": input.display().to_string(),
            "kind": "vault",
            "stanzas": stanzas(&header),
            "recorded": recorded,
        }));
    }
    let file = open_source(input)?;
    let (header, _) =
        read_header(&file).with_context(|| format!("cannot read {}", input.display()))?;
    Ok(json!({
        "input": input.display().to_string(),
        "kind": "file",
        "stanzas": stanzas(&header),
        "recorded": Value::Null,
    }))
}

/// One entry per way in: `{"kind", "description"}`.
fn stanzas(header: &Header) -> Vec<Value> {
    let mut out = Vec::new();
    for stanza in &header.stanzas {
        match stanza {
            Stanza::Age(body) => out.extend(age_stanzas(body)),
            Stanza::Passphrase(p) => out.push(json!({
                "kind": "passphrase",
                "description": format!(
                    "Argon2id m={} KiB, t={}, p={}",
                    p.params.memory_kib, p.params.time_cost, p.params.parallelism
                ),
            })),
            other => out.push(json!({
                "kind": other.kind_name(),
                "description": "a stanza kind this mvault does not know",
            })),
        }
    }
    out
}

/// The recipient stanzas in an age header (`-> TYPE ARGS` lines), without
/// the random "grease" stanzas age adds.
fn age_stanzas(body: &[u8]) -> Vec<Value> {
    let end = body
        .windows(4)
        .position(|w| w == b"\n---")
        .unwrap_or(body.len());
    let text = String::from_utf8_lossy(&body[..end]);
    text.lines()
        .filter_map(|line| line.strip_prefix("-> "))
        .filter_map(|line| {
            let mut words = line.split(' ');
            let kind = words.next()?;
            if kind.ends_with("-grease") {
                return None;
            }
            let detail = match kind {
                "X25519" => "age X25519 key (anonymous: which key is not recorded)".to_string(),
                "ssh-ed25519" | "ssh-rsa" => format!(
                    "SSH key with tag {} (first bytes of SHA-256 of the public key)",
                    words.next().unwrap_or("?")
                ),
                "scrypt" => "age passphrase".to_string(),
                other => format!("age plugin or other recipient kind {other}"),
            };
            Some(json!({ "kind": kind, "description": detail }))
        })
        .collect()
}

fn print_human(item: &Value) {
    let stanzas = item["stanzas"].as_array().map_or(&[][..], Vec::as_slice);
    println!(
        "{} ({}): {} way(s) in",
        item["input"].as_str().unwrap_or(""),
        match item["kind"].as_str() {
            Some("vault") => "directory vault",
            _ => "sealed file",
        },
        stanzas.len()
    );
    for s in stanzas {
        println!(
            "  {:<12} {}",
            s["kind"].as_str().unwrap_or(""),
            s["description"].as_str().unwrap_or("")
        );
    }
    if let Some(recorded) = item["recorded"].as_object() {
        println!("  recorded in the keyring:");
        for r in recorded["recipients"].as_array().into_iter().flatten() {
            println!("    {}", r.as_str().unwrap_or(""));
        }
        if recorded["passphrase"].as_bool() == Some(true) {
            println!("    a passphrase");
        }
    } else if item["kind"] == "directory vault" {
        println!("  (pass -i IDENTITY to list the recipient strings recorded in its keyring)");
    }
}
