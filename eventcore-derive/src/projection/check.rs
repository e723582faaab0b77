//! Rules across the handlers of one `#[projection]`.

use super::ast::ProjectionImpl;
use crate::check::one_on_per_event;
use crate::ctxt::Ctxt;

/// One `#[on]` per event struct, reported at the later handler's event type. (Two paths to the
/// same struct are caught by rustc: the expansion implements a marker trait once per handler.)
pub fn projection(cx: &Ctxt, input: &ProjectionImpl<'_>) {
    one_on_per_event(cx, &input.handlers, |h| h.event, |h| h.method.to_string());
}
