//! Rules that span several items of one input: duplicates the compiler would report badly.

use quote::ToTokens;
use syn::Type;

use crate::ast::{AggregateImpl, EventEnum};
use crate::ctxt::Ctxt;

/// The token text of a type, to compare types syntactically.
pub(crate) fn type_key(ty: &Type) -> String {
    ty.to_token_stream().to_string()
}

/// A type as a user would write it, for messages.
pub(crate) fn type_text(ty: &Type) -> String {
    type_key(ty).replace(' ', "")
}

/// Returns the index of the first element whose key equals the key of `items[i]`, if before `i`.
pub(crate) fn first_with_same_key<T>(items: &[T], i: usize, key: impl Fn(&T) -> String) -> Option<usize> {
    let wanted = key(&items[i]);
    items[..i].iter().position(|item| key(item) == wanted)
}

/// One `#[on]` per event struct among `handlers`, reported at the later handler's event type.
pub(crate) fn one_on_per_event<T>(
    cx: &Ctxt,
    handlers: &[T],
    event: impl Fn(&T) -> &Type,
    method: impl Fn(&T) -> String,
) {
    for i in 0..handlers.len() {
        if let Some(first) = first_with_same_key(handlers, i, |h| type_key(event(h))) {
            let ty = event(&handlers[i]);
            cx.error_spanned_by(
                ty,
                format!(
                    "a second `#[on]` for `{}`: the method `{}` already handles it",
                    type_text(ty),
                    method(&handlers[first])
                ),
            );
        }
    }
}

/// Two variants wrapping the same type would emit two conflicting `From` impls; the error names both.
/// The duplicates are removed so the fallback expansion still compiles.
pub fn event_enum(cx: &Ctxt, input: &mut EventEnum<'_>) {
    let mut keep = Vec::with_capacity(input.variants.len());
    for i in 0..input.variants.len() {
        match first_with_same_key(&input.variants, i, |v| type_key(v.ty)) {
            Some(first) => cx.error_spanned_by(
                input.variants[i].ty,
                format!(
                    "`{}` is already wrapped by the variant `{}`: each event struct appears once in an event enum",
                    type_text(input.variants[i].ty),
                    input.variants[first].ident
                ),
            ),
            None => keep.push(i),
        }
    }
    input.incomplete |= keep.len() < input.variants.len();
    let mut index = 0;
    input.variants.retain(|_| {
        let kept = keep.contains(&index);
        index += 1;
        kept
    });
}

/// One `#[apply]` per event type and one `#[command]` per command type.
pub fn aggregate(cx: &Ctxt, input: &AggregateImpl<'_>) {
    for i in 0..input.applies.len() {
        if let Some(first) = first_with_same_key(&input.applies, i, |a| type_key(a.event)) {
            let apply = &input.applies[i];
            cx.error_spanned_by(
                apply.event,
                format!(
                    "a second `#[apply]` for `{}`: the method `{}` already applies it",
                    type_text(apply.event),
                    input.applies[first].method
                ),
            );
        }
    }
    for i in 0..input.commands.len() {
        if let Some(first) = first_with_same_key(&input.commands, i, |c| type_key(c.command)) {
            let command = &input.commands[i];
            cx.error_spanned_by(
                command.command,
                format!(
                    "a second `#[command]` for `{}`: the method `{}` already handles it",
                    type_text(command.command),
                    input.commands[first].method
                ),
            );
        }
    }
}
