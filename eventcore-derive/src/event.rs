//! `#[derive(DomainEvent)]`: parse, check, expand; on errors, the errors beside a best-effort expansion.

use proc_macro2::TokenStream;
use syn::DeriveInput;

use crate::ast::EventInput;
use crate::ctxt::Ctxt;
use crate::{check, expand_event};

pub fn derive(input: &DeriveInput) -> TokenStream {
    let cx = Ctxt::new();
    let mut ir = EventInput::from_ast(&cx, input);
    if let Some(EventInput::Enum(set)) = &mut ir {
        check::event_enum(&cx, set);
    }
    // The expansion is emitted even beside errors (with fallback names, without bad variants),
    // so code using the type does not fail with follow-on errors.
    let expanded = ir.as_ref().map(expand_event::expand).unwrap_or_default();
    match cx.check() {
        Ok(()) => expanded,
        Err(errors) => {
            let errors = errors.into_compile_error();
            quote::quote!(#errors #expanded)
        }
    }
}
