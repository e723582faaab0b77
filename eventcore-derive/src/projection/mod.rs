//! `#[projection]`: parse, check, expand; on errors, the original impl (markers stripped) beside them.

mod ast;
mod attr;
mod check;
mod expand;

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use syn::Item;

use crate::ctxt::Ctxt;

pub fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let mut item = match syn::parse2::<Item>(input.clone()) {
        Ok(Item::Impl(item)) => item,
        Ok(other) => {
            let error = syn::Error::new_spanned(
                crate::aggregate::item_keyword(&other),
                "`#[projection]` goes on an inherent `impl` block, like `#[projection] impl AccountSummary { ... }`",
            )
            .into_compile_error();
            return quote!(#error #other);
        }
        Err(error) => {
            let error = error.into_compile_error();
            return quote!(#error #input);
        }
    };

    let cx = Ctxt::new();
    let attrs = attr::projection_attrs(&cx, args);
    let markers = ast::strip_markers(&mut item);
    let ir = ast::ProjectionImpl::from_ast(&cx, &attrs, &item, &markers);
    if let Some(ir) = &ir {
        check::projection(&cx, ir);
    }
    match (cx.check(), ir) {
        (Ok(()), Some(ir)) => expand::expand(&ir),
        (Err(errors), _) => {
            let errors = errors.into_compile_error();
            quote!(#errors #item)
        }
        (Ok(()), None) => item.into_token_stream(),
    }
}
