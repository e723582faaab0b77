//! The upcaster chain: finds the step for a stored (type, version) and runs steps until the
//! events are current for the decoding type.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::Value;

use super::upcast::{registered_upcasters, UpcastError, UpcasterRegistration};
use crate::event::{DecodeError, DomainEvent};

/// Most upcaster steps one stored event may go through before the chain is called a cycle.
pub const MAX_UPCAST_STEPS: usize = 64;

type StepTable = HashMap<(&'static str, u32), Vec<&'static UpcasterRegistration>>;

/// Upcasters by the step they start from, built once on first use.
fn table() -> &'static StepTable {
    static TABLE: OnceLock<StepTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = StepTable::new();
        for upcaster in registered_upcasters() {
            table
                .entry((upcaster.event_type, upcaster.from_version))
                .or_default()
                .push(upcaster);
        }
        table
    })
}

/// The upcaster starting at `(event_type, version)`: `None` if there is none, an error if several.
pub(crate) fn find_step(
    event_type: &str,
    version: u32,
) -> Result<Option<&'static UpcasterRegistration>, UpcastError> {
    let table: &HashMap<(&str, u32), Vec<&'static UpcasterRegistration>> = table();
    match table.get(&(event_type, version)).map(Vec::as_slice) {
        None | Some([]) => Ok(None),
        Some([one]) => Ok(Some(*one)),
        Some(many) => {
            let mut names: Vec<_> = many.iter().map(|u| u.name).collect();
            names.sort_unstable();
            Err(UpcastError::Ambiguous {
                event_type: event_type.to_owned(),
                from_version: version,
                count: many.len(),
                names: names.join(", "),
            })
        }
    }
}

/// Runs one upcaster and checks that it produced only what it declares.
pub(crate) fn run_step(
    upcaster: &UpcasterRegistration,
    payload: Value,
) -> Result<Vec<super::Upcasted>, UpcastError> {
    let produced = (upcaster.upcast)(payload)?;
    if let Some(bad) = produced.iter().find(|p| {
        !upcaster
            .produces
            .iter()
            .any(|d| d.event_type == p.event_type && d.version == p.version)
    }) {
        return Err(UpcastError::UndeclaredOutput {
            upcaster: upcaster.name,
            event_type: bad.event_type.clone(),
            version: bad.version,
        });
    }
    Ok(produced)
}

/// Decodes `payload` stored as `(event_type, version)`, which `E` rejected with `rejected`, by
/// upcasting it into events of `E`, pushed onto `out`.
///
/// Only an unknown type or an old version looks for an upcaster; with none, `rejected` stands
/// (it names the type and the version with no step).
/// With `skip_foreign`, produced events of types `E` does not know (and no upcaster leads on
/// from) are left out instead of failing the decode: a reader of some types only.
pub(crate) fn decode_upcasting<E: DomainEvent>(
    event_type: &str,
    version: u32,
    payload: &[u8],
    rejected: DecodeError,
    skip_foreign: bool,
    out: &mut Vec<E>,
) -> Result<(), DecodeError> {
    let Some(upcaster) = step_or_error(event_type, version, rejected)? else {
        return Ok(());
    };
    let value: Value = serde_json::from_slice(payload).map_err(|source| DecodeError::Payload {
        event_type: event_type.to_owned(),
        version,
        source,
    })?;
    let mut steps = 0;
    upcast_into(upcaster, value, &mut steps, skip_foreign, out)
}

/// After `E` rejected `(event_type, version)` with `error`: the step to take, or the error to return.
fn step_or_error(
    event_type: &str,
    version: u32,
    error: DecodeError,
) -> Result<Option<&'static UpcasterRegistration>, DecodeError> {
    if !matches!(
        error,
        DecodeError::MissingUpcaster { .. } | DecodeError::UnknownEventType { .. }
    ) {
        return Err(error);
    }
    match find_step(event_type, version) {
        Ok(Some(upcaster)) => Ok(Some(upcaster)),
        Ok(None) => Err(error),
        Err(source) => Err(DecodeError::Upcast {
            event_type: event_type.to_owned(),
            version,
            source: Box::new(source),
        }),
    }
}

fn upcast_into<E: DomainEvent>(
    upcaster: &UpcasterRegistration,
    value: Value,
    steps: &mut usize,
    skip_foreign: bool,
    out: &mut Vec<E>,
) -> Result<(), DecodeError> {
    *steps += 1;
    let upcast_error = |source| DecodeError::Upcast {
        event_type: upcaster.event_type.to_owned(),
        version: upcaster.from_version,
        source: Box::new(source),
    };
    if *steps > MAX_UPCAST_STEPS {
        return Err(upcast_error(UpcastError::TooManySteps(MAX_UPCAST_STEPS)));
    }
    for produced in run_step(upcaster, value).map_err(upcast_error)? {
        let bytes = serde_json::to_vec(&produced.payload).map_err(|source| DecodeError::Payload {
            event_type: produced.event_type.clone(),
            version: produced.version,
            source,
        })?;
        match E::decode_payload(&produced.event_type, produced.version, &bytes) {
            Ok(event) => out.push(event),
            Err(error) => match step_or_error(&produced.event_type, produced.version, error) {
                Ok(Some(next)) => upcast_into(next, produced.payload, steps, skip_foreign, out)?,
                Ok(None) => {}
                // A type `E` does not know, with no step onwards: not for this reader.
                Err(DecodeError::UnknownEventType { .. }) if skip_foreign => {}
                Err(error) => return Err(error),
            },
        }
    }
    Ok(())
}
