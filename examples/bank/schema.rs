//! `schema export`, `schema check` and `schema catalog`: the event registry from the command line.

use std::error::Error;
use std::path::PathBuf;

use clap::Subcommand;
use eventcore::schema::catalog::catalog;
use eventcore::schema::compat::Compatibility;
use eventcore::schema::registry;
use eventcore_testing::RegistryCheck;

/// What to do with the event registry.
#[derive(Subcommand)]
pub enum SchemaCommand {
    /// Write the registry JSON (every event type, version, schema and upcaster).
    Export {
        /// Where to write it.
        #[arg(long, default_value = "schemas/registry.json")]
        out: PathBuf,
    },
    /// Compare the registry with the committed JSON; exit 1 with a report when they disagree.
    Check {
        /// The committed registry.
        #[arg(long, default_value = "schemas/registry.json")]
        registry: PathBuf,
        /// Compatibility mode: NONE, BACKWARD, FORWARD, FULL, or one of them with _TRANSITIVE.
        #[arg(long, default_value = "NONE")]
        compatibility: Compatibility,
    },
    /// Write the event catalog: a Markdown page per aggregate and a Mermaid diagram.
    Catalog {
        /// The directory to write into.
        #[arg(long, default_value = "docs/catalog")]
        out: PathBuf,
    },
}

/// Runs one schema command.
pub fn run(command: SchemaCommand) -> Result<(), Box<dyn Error>> {
    // Registration is link-time: make sure the bank domain is linked into this binary.
    let _ = <eventcore_examples::bank::AccountEvent as eventcore::DomainEvent>::EVENT_TYPES;
    match command {
        SchemaCommand::Export { out } => {
            registry().validate()?;
            if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&out, registry().to_json())?;
            println!("wrote {}", out.display());
        }
        SchemaCommand::Check {
            registry: path,
            compatibility,
        } => {
            let outcome = RegistryCheck::new::<eventcore_examples::bank::AccountEvent>(&path)
                .compatibility(compatibility)
                .update(false)
                .ci(true)
                .run()?;
            println!("{}: {outcome:?}", path.display());
        }
        SchemaCommand::Catalog { out } => {
            for file in catalog().write_to(&out)? {
                println!("wrote {}", file.display());
            }
        }
    }
    Ok(())
}
