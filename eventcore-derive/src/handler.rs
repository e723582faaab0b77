//! Handler-method parsing shared by the macros on `impl` blocks (`#[aggregate]`, `#[projection]`,
//! `#[event_handler]`).

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Attribute, FnArg, ImplItem, ImplItemFn, Item, ItemImpl, Type};

use crate::attr::{Sp, ON};
use crate::ctxt::Ctxt;
use crate::naming;

/// Parses the input of an attribute macro on an inherent `impl` block; otherwise the tokens to
/// emit: the error beside the original item. `usage` shows the attribute on an `impl` block.
pub fn parse_impl(input: TokenStream, usage: &str) -> Result<ItemImpl, TokenStream> {
    match syn::parse2::<Item>(input.clone()) {
        Ok(Item::Impl(item)) => Ok(item),
        Ok(other) => {
            let error = syn::Error::new_spanned(
                crate::aggregate::item_keyword(&other),
                format!(
                    "{} goes on an inherent `impl` block, like `{usage}`",
                    attribute_of(usage)
                ),
            )
            .into_compile_error();
            Err(quote!(#error #other))
        }
        Err(error) => {
            let error = error.into_compile_error();
            Err(quote!(#error #input))
        }
    }
}

/// `#[name]` of a usage like `#[name] impl T { ... }`.
fn attribute_of(usage: &str) -> String {
    let end = usage.find(']').map_or(usage.len(), |i| i + 1);
    format!("`{}`", &usage[..end])
}

/// The `impl` block is inherent (not `impl Trait for T`) and not generic (`why_not_generic`).
/// Returns `false` for a trait impl, which the caller does not expand.
pub fn check_inherent(cx: &Ctxt, item: &ItemImpl, usage: &str, why_not_generic: &str) -> bool {
    let attribute = attribute_of(usage);
    if let Some((_, path, _)) = &item.trait_ {
        cx.error_spanned_by(
            path,
            format!("{attribute} goes on an inherent `impl` block, like `{usage}`"),
        );
        return false;
    }
    if !item.generics.params.is_empty() {
        cx.error_spanned_by(
            &item.generics,
            format!("{attribute} cannot be generic: {why_not_generic}"),
        );
    }
    true
}

/// The name of a projection or event handler (`what`, set with `#[attribute(name = "...")]`):
/// the `name` option, or the snake_case type name; `[a-z0-9_]` either way.
pub fn snake_name(
    cx: &Ctxt,
    name: Option<&Sp<String>>,
    self_ty: &Type,
    what: &str,
    attribute: &str,
) -> Option<String> {
    let label = format!("{what} name");
    if let Some(name) = name {
        if let Some(why) = naming::invalid_snake_name(&label, &name.value) {
            cx.error_at(name.span, why);
        }
        return Some(name.value.clone());
    }
    let Type::Path(path) = self_ty else {
        cx.error_spanned_by(
            self_ty,
            format!("cannot name this {what}: add `name = \"...\"` to `#[{attribute}]`"),
        );
        return None;
    };
    let ident = &path.path.segments.last()?.ident;
    let name = naming::snake_case(&ident.to_string());
    if let Some(why) = naming::invalid_snake_name(&label, &name) {
        cx.error_spanned_by(
            ident,
            format!("{why}; set one with `#[{attribute}(name = \"...\")]`"),
        );
    }
    Some(name)
}

/// Marks `#[on]` methods.
#[derive(Clone, Copy)]
pub struct On;

/// Removes `#[on]` from the methods of `item`, returning each method's markers.
pub fn strip_on_markers(item: &mut ItemImpl) -> Vec<Vec<(On, Attribute)>> {
    strip_markers(item, |attr| attr.path().is_ident(ON).then_some(On))
}

/// The `#[on]` methods of `item` (markers from [`strip_on_markers`]) with their marker; a
/// repeated marker and a block without any are errors. `example` shows one handler.
pub fn on_methods<'a, 'm>(
    cx: &Ctxt,
    item: &'a ItemImpl,
    markers: &'m [Vec<(On, Attribute)>],
    attribute: &str,
    example: &str,
) -> Vec<(&'a ImplItemFn, &'m Attribute)> {
    let mut methods = Vec::new();
    for (impl_item, markers) in item.items.iter().zip(markers) {
        let ImplItem::Fn(method) = impl_item else { continue };
        match markers.as_slice() {
            [] => {}
            [(On, attr)] => methods.push((method, attr)),
            [_, (_, second), ..] => cx.error_spanned_by(second, "a method takes `#[on]` once"),
        }
    }
    if markers.iter().all(Vec::is_empty) {
        cx.error_spanned_by(
            &item.self_ty,
            format!("a `#[{attribute}]` needs at least one `#[on]` handler, like `{example}`"),
        );
    }
    methods
}

/// The event an `#[on]` method takes, as `&E` or `&Envelope<E>`: `E`, and whether in an envelope.
pub fn event_parameter<'a>(cx: &Ctxt, method: &'a ImplItemFn) -> Option<(&'a Type, bool)> {
    let param = single_parameter(cx, method, "the event, as `&E` or `&Envelope<E>`")?;
    let Some(referenced) = shared_reference(param) else {
        cx.error_spanned_by(
            param,
            "the event parameter of an `#[on]` method is a shared reference, like `e: &AccountOpened` or `e: &Envelope<AccountOpened>`",
        );
        return None;
    };
    Some(match envelope_payload(referenced) {
        Some(payload) => (payload, true),
        None => (referenced, false),
    })
}

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

/// A handler is `async` (`why_async` says why), reported at `fn`, and not generic.
pub fn check_async_and_not_generic(cx: &Ctxt, method: &ImplItemFn, marker: &str, why_async: &str) {
    let sig = &method.sig;
    if sig.asyncness.is_none() {
        cx.error_spanned_by(
            sig.fn_token,
            format!("`#[{marker}]` methods are `async fn`: {why_async}"),
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
