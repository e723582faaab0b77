//! Rules across the handlers of one `#[saga]`.

use super::ast::SagaImpl;
use crate::check::{first_with_same_key, type_key, type_text};
use crate::ctxt::Ctxt;

/// One handler per event struct and per deadline type, reported at the later handler's type.
/// (Two paths to one struct are caught by rustc: the expansion implements a marker trait per handler.)
pub fn saga(cx: &Ctxt, input: &SagaImpl<'_>) {
    for i in 0..input.events.len() {
        if let Some(first) = first_with_same_key(&input.events, i, |h| type_key(h.event)) {
            let ty = input.events[i].event;
            cx.error_spanned_by(
                ty,
                format!(
                    "a second handler for `{}`: the method `{}` already handles it",
                    type_text(ty),
                    input.events[first].method
                ),
            );
        }
    }
    for i in 0..input.deadlines.len() {
        if let Some(first) = first_with_same_key(&input.deadlines, i, |h| type_key(h.deadline)) {
            let ty = input.deadlines[i].deadline;
            cx.error_spanned_by(
                ty,
                format!(
                    "a second `#[deadline]` for `{}`: the method `{}` already handles it",
                    type_text(ty),
                    input.deadlines[first].method
                ),
            );
        }
    }
}
