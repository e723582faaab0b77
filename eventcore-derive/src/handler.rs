//! Handler-method parsing shared by the macros on `impl` blocks (`#[aggregate]`, `#[projection]`).

use syn::{Attribute, FnArg, ImplItem, ImplItemFn, ItemImpl, Type};

use crate::ctxt::Ctxt;

/// Removes the marker attributes `role_of` recognises from the methods of `item`, returning
/// each item's markers (in item order; empty for non-methods and unmarked methods).
pub fn strip_markers<R: Copy>(
    item: &mut ItemImpl,
    role_of: impl Fn(&Attribute) -> Option<R>,
) -> Vec<Vec<(R, Attribute)>> {
    item.items
        .iter_mut()
        .map(|item| match item {
            ImplItem::Fn(method) => {
                let mut roles = Vec::new();
                method.attrs.retain(|attr| match role_of(attr) {
                    Some(role) => {
                        roles.push((role, attr.clone()));
                        false
                    }
                    None => true,
                });
                roles
            }
            _ => Vec::new(),
        })
        .collect()
}

/// A marker that takes no arguments: `#[apply]`, not `#[apply(...)]`.
pub fn check_no_arguments(cx: &Ctxt, attr: &Attribute, marker: &str) {
    if !matches!(attr.meta, syn::Meta::Path(_)) {
        cx.error_spanned_by(&attr.meta, format!("`#[{marker}]` takes no arguments"));
    }
}

/// A handler is neither `async` (`why_sync` says why) nor generic.
pub fn check_sync_and_not_generic(cx: &Ctxt, method: &ImplItemFn, marker: &str, why_sync: &str) {
    let sig = &method.sig;
    if let Some(asyncness) = sig.asyncness {
        cx.error_spanned_by(
            asyncness,
            format!("`#[{marker}]` methods cannot be `async`: {why_sync}"),
        );
    }
    if !sig.generics.params.is_empty() {
        cx.error_spanned_by(&sig.generics, format!("`#[{marker}]` methods cannot be generic"));
    }
}

/// The receiver of `method` must be `&self` (`mutable == false`) or `&mut self`.
pub fn check_receiver(cx: &Ctxt, method: &ImplItemFn, marker: &str, mutable: bool) {
    let expected = if mutable { "&mut self" } else { "&self" };
    let message = format!("`#[{marker}]` methods take `{expected}`");
    match method.sig.receiver() {
        Some(receiver)
            if receiver.colon_token.is_none()
                && receiver.reference.is_some()
                && receiver.mutability.is_some() == mutable => {}
        Some(receiver) => cx.error_spanned_by(receiver, message),
        None => cx.error_at(
            method.sig.paren_token.span.open(),
            format!("{message} as first parameter"),
        ),
    }
}

/// The single typed parameter after the receiver, or an error describing it as `what`.
pub fn single_parameter<'a>(cx: &Ctxt, method: &'a ImplItemFn, what: &str) -> Option<&'a Type> {
    let typed: Vec<_> = method
        .sig
        .inputs
        .iter()
        .filter_map(|arg| match arg {
            FnArg::Typed(pat) => Some(pat),
            FnArg::Receiver(_) => None,
        })
        .collect();
    match typed.as_slice() {
        [one] => Some(&one.ty),
        [] => {
            cx.error_at(
                method.sig.paren_token.span.close(),
                format!("expected one parameter after the receiver: {what}"),
            );
            None
        }
        [_, extra, ..] => {
            cx.error_spanned_by(
                extra,
                format!("expected one parameter after the receiver: {what}"),
            );
            None
        }
    }
}

/// The referenced type of a shared reference parameter (`&T` gives `T`), or `None`.
pub fn shared_reference(ty: &Type) -> Option<&Type> {
    match ty {
        Type::Reference(reference) if reference.mutability.is_none() => Some(&reference.elem),
        _ => None,
    }
}

/// `T` of `Envelope<T>` (any path ending in `Envelope` with one type argument), or `None`.
pub fn envelope_payload(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ty else { return None };
    if path.qself.is_some() {
        return None;
    }
    let last = path.path.segments.last()?;
    if last.ident != "Envelope" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.iter().collect::<Vec<_>>().as_slice() {
        [syn::GenericArgument::Type(payload)] => Some(payload),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    #[test]
    fn envelope_payload_reads_the_type_argument() {
        let ty: Type = parse_quote!(eventcore::Envelope<AccountOpened>);
        let payload = envelope_payload(&ty).map(|t| quote::ToTokens::to_token_stream(t).to_string());
        assert_eq!(payload.as_deref(), Some("AccountOpened"));
        assert!(envelope_payload(&parse_quote!(AccountOpened)).is_none());
        assert!(envelope_payload(&parse_quote!(Envelope)).is_none());
        assert!(envelope_payload(&parse_quote!(Envelope<A, B>)).is_none());
    }

    #[test]
    fn shared_reference_rejects_mutable_and_owned() {
        assert!(shared_reference(&parse_quote!(&A)).is_some());
        assert!(shared_reference(&parse_quote!(&mut A)).is_none());
        assert!(shared_reference(&parse_quote!(A)).is_none());
    }
}
