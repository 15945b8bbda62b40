//! `mvault keygen`, and `mvault keygen -y IDENTITY` (its recipients).

use std::path::Path;

use anyhow::Result;

use crate::cli::KeygenArgs;
use crate::exit::{Exit, fail};
use crate::identity_file::identity_file_recipients;
use crate::key_args::{default_identity_path, generate_identity};

pub fn run(args: KeygenArgs, quiet: bool) -> Result<Exit> {
    if let Some(identity) = &args.recipients_of {
        return print_recipients(identity, args.json, quiet);
    }
    let path = args
        .output
        .or_else(default_identity_path)
        .ok_or_else(|| fail(Exit::Usage, "no HOME to put the identity in; pass -o FILE"))?;
    let recipient = generate_identity(&path, args.force)?;
    if args.json {
        let item = serde_json::json!({
            "kind": "identity",
            "output": path.display().to_string(),
            "recipient": recipient,
            "ok": true,
        });
        crate::json::print(&crate::json::report("keygen", true, vec![item], vec![]));
    } else {
        if !quiet {
            eprintln!(
                "mvault: identity written to {} (mode 600); its recipient:",
                path.display()
            );
        }
        println!("{recipient}");
    }
    Ok(Exit::Ok)
}

/// `keygen -y IDENTITY`: one recipient a line on stdout, like `age-keygen -y`.
fn print_recipients(identity: &Path, json: bool, quiet: bool) -> Result<Exit> {
    let found = identity_file_recipients(identity)?;
    if json {
        let item = serde_json::json!({
            "kind": "identity",
            "input": identity.display().to_string(),
            "recipients": found.recipients,
            "plugins": found.plugins,
            "ok": true,
        });
        crate::json::print(&crate::json::report("keygen", true, vec![item], vec![]));
        return Ok(Exit::Ok);
    }
    for r in &found.recipients {
        println!("{r}");
    }
    if !quiet {
        for plugin in &found.plugins {
            eprintln!(
                "mvault: {} has an age-plugin-{plugin} identity; its recipient comes from the plugin (e.g. `age-plugin-{plugin} --list`)",
                identity.display()
            );
        }
    }
    Ok(Exit::Ok)
}
