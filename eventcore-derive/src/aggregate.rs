//! `#[aggregate]`: parse, check, expand; on errors, the original impl (markers stripped) beside them.

use proc_macro2::TokenStream;
use quote::quote;
use syn::Item;

use crate::ast::{self, AggregateImpl};
use crate::ctxt::Ctxt;
use crate::{attr, check, expand_aggregate};

pub fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let mut item = match syn::parse2::<Item>(input.clone()) {
        Ok(Item::Impl(item)) => item,
        Ok(other) => {
            let error = syn::Error::new_spanned(
                item_keyword(&other),
                "`#[aggregate]` goes on an inherent `impl` block, like `#[aggregate(events = E, error = Err)] impl Account { ... }`",
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
    let attrs = attr::aggregate_attrs(&cx, args);
    let roles = ast::strip_markers(&mut item);
    let ir = AggregateImpl::from_ast(&cx, &attrs, &item, &roles);
    if let Some(ir) = &ir {
        check::aggregate(&cx, ir);
    }
    match (cx.check(), ir) {
        (Ok(()), Some(ir)) => expand_aggregate::expand(&ir),
        (Err(errors), Some(ir)) => {
            let errors = errors.into_compile_error();
            let fallback = expand_aggregate::fallback(&ir);
            quote!(#errors #fallback)
        }
        (Err(errors), None) => {
            let errors = errors.into_compile_error();
            quote!(#errors #item)
        }
        (Ok(()), None) => quote!(#item),
    }
}

/// The token naming what kind of item `item` is (`struct`, `fn`, ...), where the error points.
pub(crate) fn item_keyword(item: &Item) -> TokenStream {
    use quote::ToTokens;
    match item {
        Item::Struct(i) => i.struct_token.to_token_stream(),
        Item::Enum(i) => i.enum_token.to_token_stream(),
        Item::Fn(i) => i.sig.fn_token.to_token_stream(),
        Item::Trait(i) => i.trait_token.to_token_stream(),
        Item::Mod(i) => i.mod_token.to_token_stream(),
        other => other.to_token_stream(),
    }
}
