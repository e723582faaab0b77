//! Rules across the handlers of one `#[projection]`.

use super::ast::ProjectionImpl;
use crate::check::{first_with_same_key, type_key, type_text};
use crate::ctxt::Ctxt;

/// One `#[on]` per event struct, reported at the later handler's event type. (Two paths to the
/// same struct are caught by rustc: the expansion implements a marker trait once per handler.)
pub fn projection(cx: &Ctxt, input: &ProjectionImpl<'_>) {
    for i in 0..input.handlers.len() {
        if let Some(first) = first_with_same_key(&input.handlers, i, |h| type_key(h.event)) {
            let handler = &input.handlers[i];
            cx.error_spanned_by(
                handler.event,
                format!(
                    "a second `#[on]` for `{}`: the method `{}` already handles it",
                    type_text(handler.event),
                    input.handlers[first].method
                ),
            );
        }
    }
}
