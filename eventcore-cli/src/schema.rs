//! `schema export`, `schema check` and `schema catalog`, on registry files.

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
        SchemaCommand::Export { registry, out, check } => export(&registry, out.as_deref(), check, output),
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

/// `schema export`: the registry file rewritten canonically, to `out` or standard output; with
/// `check`, only whether it already is.
fn export(registry: &Path, out: Option<&Path>, check: bool, output: &Output) -> Result<(), CliError> {
    let text = read_text(registry)?;
    let canonical = parse(registry, &text)?.to_json();
    let unchanged = canonical == text;
    if check {
        output.emit(
            &json!({ "canonical": unchanged, "registry": registry.display().to_string() }),
            || format!("{} is in canonical form", registry.display()),
        )?;
        return if unchanged {
            Ok(())
        } else {
            Err(CliError::Refused(format!(
                "{} is not in canonical form: rewrite it with `eventcore schema export --registry {0} --out {0}`",
                registry.display()
            )))
        };
    }
    let Some(out) = out else {
        // The registry is the output, JSON either way.
        return crate::output::write_out(&canonical);
    };
    std::fs::write(out, &canonical).map_err(|source| CliError::Io {
        what: format!("cannot write {}", out.display()),
        source,
    })?;
    output.emit(
        &json!({ "written": out.display().to_string(), "changed": !unchanged }),
        || {
            format!(
                "wrote {}{}",
                out.display(),
                if unchanged { " (already canonical)" } else { "" }
            )
        },
    )
}

/// Reads a registry file.
fn read(path: &Path) -> Result<Registry, CliError> {
    parse(path, &read_text(path)?)
}

fn read_text(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|source| CliError::Io {
        what: format!("cannot read the registry file {}", path.display()),
        source,
    })
}

fn parse(path: &Path, text: &str) -> Result<Registry, CliError> {
    Registry::from_json(text).map_err(|e| {
        CliError::Usage(format!(
            "{} is not a registry file: {}",
            path.display(),
            crate::error::chain(&e)
        ))
    })
}
