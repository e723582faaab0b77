//! Rules of `#[derive(IntegrationEvent)]` beyond single keys.

use super::ast::IntegrationInput;
use crate::ctxt::Ctxt;

/// The name is required: it is the published contract between services, so it is never derived
/// from the Rust type name, which a refactoring could change.
pub fn integration_event(cx: &Ctxt, input: &IntegrationInput<'_>) {
    if input.name.is_none() {
        let message = if input.attribute_present {
            "`#[integration(...)]` needs `name = \"...\"`: an integration event's name is the \
             published contract between services, never derived from the Rust type name"
        } else {
            "`#[derive(IntegrationEvent)]` needs `#[integration(name = \"...\", version = N)]`: an \
             integration event's name is the published contract between services"
        };
        cx.error_spanned_by(input.ident, message);
    }
}
