//! `#[derive(IntegrationEvent)]`: parse, check, expand; on errors, the errors beside a best-effort expansion.

mod ast;
mod attr;
mod check;
mod expand;

use proc_macro2::TokenStream;
use syn::DeriveInput;

use crate::ctxt::Ctxt;

pub fn derive(input: &DeriveInput) -> TokenStream {
    let cx = Ctxt::new();
    let ir = ast::IntegrationInput::from_ast(&cx, input);
    if let Some(ir) = &ir {
        check::integration_event(&cx, ir);
    }
    // Emitted even beside errors (with a fallback name), so code using the type does not fail
    // with follow-on errors.
    let expanded = ir.as_ref().map(expand::expand).unwrap_or_default();
    match cx.check() {
        Ok(()) => expanded,
        Err(errors) => {
            let errors = errors.into_compile_error();
            quote::quote!(#errors #expanded)
        }
    }
}
