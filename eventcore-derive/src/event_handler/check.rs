//! Rules across the handlers of one `#[event_handler]`.

use super::ast::HandlerImpl;
use crate::check::one_on_per_event;
use crate::ctxt::Ctxt;

/// One `#[on]` per event struct, reported at the later handler's event type. (Two paths to the
/// same struct are caught by rustc: the expansion implements a marker trait once per handler.)
pub fn event_handler(cx: &Ctxt, input: &HandlerImpl<'_>) {
    one_on_per_event(cx, &input.handlers, |h| h.event, |h| h.method.to_string());
}
