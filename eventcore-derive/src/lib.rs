//! Procedural macros of eventcore (being written).
use proc_macro::TokenStream;

/// Derives `DomainEvent`.
#[proc_macro_derive(DomainEvent, attributes(event))]
pub fn derive_domain_event(_input: TokenStream) -> TokenStream {
    TokenStream::new()
}

/// Implements `Aggregate` from an impl block.
#[proc_macro_attribute]
pub fn aggregate(_args: TokenStream, input: TokenStream) -> TokenStream {
    input
}
