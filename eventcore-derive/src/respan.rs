//! Moves generated tokens onto a user's span, so errors about them point at the user's code.

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::quote;

/// The tokens of `tokens`, every one (nested ones too) at `span`.
pub fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|tree| match tree {
            TokenTree::Group(group) => {
                let mut respanned = Group::new(group.delimiter(), respan(group.stream(), span));
                respanned.set_span(span);
                TokenTree::Group(respanned)
            }
            mut other => {
                other.set_span(span);
                other
            }
        })
        .collect()
}

/// `<krate>::__private`, the module generated code reaches the runtime through, at `span`.
pub fn private_path(krate: &syn::Path, span: Span) -> TokenStream {
    respan(quote!(#krate::__private), span)
}

/// `callee(args)` reported at `span`: the callee and the parentheses take `span`, the arguments
/// keep theirs, so local variables in them still resolve when `span` comes from another macro.
pub fn call_at(span: Span, callee: TokenStream, args: TokenStream) -> TokenStream {
    let mut parens = Group::new(proc_macro2::Delimiter::Parenthesis, args);
    parens.set_span(span);
    let mut call = respan(callee, span);
    call.extend([TokenTree::Group(parens)]);
    call
}
