//! `schema check` and `schema catalog`, on registry files.

use std::path::Path;

use eventcore::schema::catalog::Catalog;
use eventcore::schema::check::check;
use eventcore::schema::compat::CompatConfig;
use eventcore::schema::Registry;
use serde_json::json;

use crate::cli::SchemaCommand;
use crate::error::CliError;
use crate::output::Output;

/// Runs a `schema` command.
pub fn run(command: SchemaCommand, output: &Output) -> Result<(), CliError> {
    match command {
        SchemaCommand::Check {
            committed,
            current,
            compatibility,
        } => {
            let (old, new) = (read(&committed)?, read(&current)?);
            let report = check(&old, &new, &CompatConfig::new(compatibility));
            let value = json!({
                "ok": report.is_ok(),
                "compatibility": compatibility.name(),
                "findings": report.findings.iter().map(ToString::to_string).collect::<Vec<_>>(),
            });
            output.emit(&value, || report.to_string())?;
            if report.is_ok() {
                Ok(())
            } else {
                Err(CliError::Refused(format!(
                    "{} does not match {} ({} problem(s))",
                    current.display(),
                    committed.display(),
                    report.findings.len()
                )))
            }
        }
        SchemaCommand::Catalog { registry, out } => {
            let catalog = Catalog::new(read(&registry)?, []);
            let written = catalog.write_to(&out).map_err(|source| CliError::Io {
                what: format!("cannot write the catalog into {}", out.display()),
                source,
            })?;
            let files: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
            output.emit(&json!({ "written": files }), || {
                files.iter().map(|f| format!("wrote {f}\n")).collect()
            })?;
            Ok(())
        }
    }
}

/// Reads a registry file.
fn read(path: &Path) -> Result<Registry, CliError> {
    let text = std::fs::read_to_string(path).map_err(|source| CliError::Io {
        what: format!("cannot read the registry file {}", path.display()),
        source,
    })?;
    Registry::from_json(&text).map_err(|e| {
        CliError::Usage(format!(
            "{} is not a registry file: {}",
            path.display(),
            crate::error::chain(&e)
        ))
    })
}
