//! The `--json` reports: one envelope for every command, documented in
//! docs/JSON.md and checked against docs/mvault.schema.json.
//!
//! Every report is `{"schema", "command", "ok", "items", "warnings"}`, plus
//! `"error"` when the command failed as a whole. Items are the things the
//! command reports on (one per input, one per check, one per benchmark).
//! Within a schema version fields are only added, never renamed or removed.

use serde_json::{Map, Value, json};

use crate::exit::{Exit, exit_for};

/// The schema version every report carries in `"schema"`.
pub const SCHEMA: &str = "mvault/1";

/// A failure as reports give it: `{"kind", "message", "exit_code"}`.
pub fn error_value(exit: Exit, message: &str) -> Value {
    json!({ "kind": exit.name(), "message": message, "exit_code": exit as i32 })
}

/// The error object for an `anyhow::Error` (kind and code as the process
/// would exit with).
pub fn error_of(err: &anyhow::Error) -> Value {
    error_value(exit_for(err), &crate::report::error_text(err))
}

/// A report: the envelope around `items`. Items may carry their own
/// `"warnings"` list; those move to the report's `warnings` so every
/// warning is in one place.
pub fn report(command: &str, ok: bool, items: Vec<Value>, warnings: Vec<String>) -> Value {
    let mut all_warnings = Vec::new();
    let items: Vec<Value> = items
        .into_iter()
        .map(|mut item| {
            if let Some(Value::Array(list)) =
                item.as_object_mut().and_then(|o| o.remove("warnings"))
            {
                all_warnings.extend(list.into_iter().filter_map(|w| match w {
                    Value::String(s) => Some(s),
                    _ => None,
                }));
            }
            item
        })
        .collect();
    all_warnings.extend(warnings);
    json!({
        "schema": SCHEMA,
        "command": command,
        "ok": ok,
        "items": items,
        "warnings": all_warnings,
    })
}

/// Adds command-specific top-level fields (e.g. `bench`'s settings).
pub fn with_fields(mut report: Value, fields: Map<String, Value>) -> Value {
    if let Some(object) = report.as_object_mut() {
        object.extend(fields);
    }
    report
}

/// The report of a command that failed before it had anything to report:
/// no items, and the error.
pub fn failure(command: &str, err: &anyhow::Error) -> Value {
    let mut value = report(command, false, Vec::new(), Vec::new());
    value["error"] = error_of(err);
    value
}

/// Prints a report on stdout.
pub fn print(value: &Value) {
    crate::report::print_json(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_warnings_move_to_the_report() {
        let r = report(
            "open",
            true,
            vec![
                json!({ "input": "a", "warnings": ["w1"] }),
                json!({ "input": "b" }),
            ],
            vec!["w2".into()],
        );
        assert_eq!(r["schema"], SCHEMA);
        assert_eq!(r["warnings"], json!(["w1", "w2"]));
        assert!(r["items"][0].get("warnings").is_none());
    }

    #[test]
    fn errors_carry_kind_and_exit_code() {
        let e = error_value(Exit::Integrity, "tampered");
        assert_eq!(
            e,
            json!({ "kind": "integrity", "message": "tampered", "exit_code": 4 })
        );
    }
}
