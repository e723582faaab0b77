//! The validated IR of a `#[saga]` impl block, borrowing the `syn` input for spans.

use proc_macro2::Span;
use syn::{Attribute, FnArg, Ident, ImplItem, ImplItemFn, ItemImpl, Member, ReturnType, Type};

use super::attr::{key_attr, SagaAttrs, COMMANDS, DEADLINE, END, HANDLE, SAGA, START};
use crate::attr::Sp;
use crate::ctxt::Ctxt;
use crate::handler;

/// The role of a marked method.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    Start,
    Handle,
    End,
    Deadline,
}

impl Marker {
    fn of(attr: &Attribute) -> Option<Self> {
        let path = attr.path();
        if path.is_ident(START) {
            Some(Self::Start)
        } else if path.is_ident(HANDLE) {
            Some(Self::Handle)
        } else if path.is_ident(END) {
            Some(Self::End)
        } else if path.is_ident(DEADLINE) {
            Some(Self::Deadline)
        } else {
            None
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Start => START,
            Self::Handle => HANDLE,
            Self::End => END,
            Self::Deadline => DEADLINE,
        }
    }
}

/// A `#[saga]` impl block.
pub struct SagaImpl<'a> {
    pub item: &'a ItemImpl,
    pub krate: syn::Path,
    pub name: String,
    pub version: u32,
    pub commands: Type,
    pub events: Vec<EventFn<'a>>,
    pub deadlines: Vec<DeadlineFn<'a>>,
}

/// A `#[start]`, `#[handle]` or `#[end]` method.
pub struct EventFn<'a> {
    pub method: &'a Ident,
    pub marker: Marker,
    /// The event struct it handles.
    pub event: &'a Type,
    /// Whether it takes `&Envelope<E>` rather than `&E`.
    pub envelope: bool,
    /// The payload field finding the instance.
    pub key: Member,
}

/// A `#[deadline]` method.
pub struct DeadlineFn<'a> {
    pub method: &'a Ident,
    /// The deadline type it handles.
    pub deadline: &'a Type,
}

/// Removes the saga markers from the methods of `item`, returning each method's markers.
pub fn strip_markers(item: &mut ItemImpl) -> Vec<Vec<(Marker, Attribute)>> {
    handler::strip_markers(item, Marker::of)
}

const EXAMPLE: &str =
    "#[start(key = order_id)] fn placed(&mut self, e: &OrderPlaced, cx: &mut SagaContext<Self>) { ... }";

impl<'a> SagaImpl<'a> {
    /// Builds the IR of `item` (markers already stripped, `markers` from [`strip_markers`]).
    pub fn from_ast(
        cx: &Ctxt,
        attrs: &SagaAttrs,
        item: &'a ItemImpl,
        markers: &[Vec<(Marker, Attribute)>],
    ) -> Option<Self> {
        if !handler::check_inherent(
            cx,
            item,
            "#[saga(commands = ShopCommand)] impl Checkout { ... }",
            "a saga has one name and one set of instances",
        ) {
            return None;
        }
        let name = handler::snake_name(cx, attrs.name.as_ref(), &item.self_ty, "saga", SAGA);
        let version = match attrs.version {
            Some(Sp { value: 0, span }) => {
                cx.error_at(span, "saga versions start at 1");
                1
            }
            Some(Sp { value, .. }) => value,
            None => 1,
        };
        let commands = attrs.commands.clone();
        if commands.is_none() {
            cx.error_at(
                Span::call_site(),
                format!("`#[saga]` needs the type of the commands it sends, like `#[saga({COMMANDS} = ShopCommand)]`"),
            );
        }

        let mut events = Vec::new();
        let mut deadlines = Vec::new();
        for (impl_item, markers) in item.items.iter().zip(markers) {
            let ImplItem::Fn(method) = impl_item else { continue };
            let (marker, attr) = match markers.as_slice() {
                [] => continue,
                [(marker, attr)] => (*marker, attr),
                [_, (_, second), ..] => {
                    cx.error_spanned_by(
                        second,
                        "a method takes one of `#[start]`, `#[handle]`, `#[end]`, `#[deadline]`",
                    );
                    continue;
                }
            };
            let Some((parameter, envelope)) = signature(cx, method, marker) else {
                continue;
            };
            if marker == Marker::Deadline {
                handler::check_no_arguments(cx, attr, DEADLINE);
                if envelope {
                    cx.error_spanned_by(
                        parameter,
                        "a `#[deadline]` handler takes the deadline value, like `d: &PaymentTimedOut`",
                    );
                    continue;
                }
                deadlines.push(DeadlineFn {
                    method: &method.sig.ident,
                    deadline: parameter,
                });
            } else if let Some(key) = key_attr(cx, attr, marker.name()) {
                events.push(EventFn {
                    method: &method.sig.ident,
                    marker,
                    event: parameter,
                    envelope,
                    key,
                });
            }
        }
        if !markers.iter().flatten().any(|(m, _)| *m == Marker::Start) {
            cx.error_spanned_by(
                &item.self_ty,
                format!(
                    "a `#[saga]` needs a `#[start]` handler that creates its instances, like `{EXAMPLE}`"
                ),
            );
        }

        Some(SagaImpl {
            item,
            krate: attrs
                .krate
                .clone()
                .unwrap_or_else(|| syn::parse_quote!(::eventcore)),
            name: name?,
            version,
            commands: commands?,
            events,
            deadlines,
        })
    }
}

/// Checks `fn(&mut self, x: &X, cx: &mut SagaContext<Self>)`; returns `X` (or `E` of
/// `&Envelope<E>`) and whether it is an envelope.
fn signature<'a>(cx: &Ctxt, method: &'a ImplItemFn, marker: Marker) -> Option<(&'a Type, bool)> {
    let name = marker.name();
    handler::check_sync_and_not_generic(
        cx,
        method,
        name,
        "a saga step commits its effects with the checkpoint",
    );
    handler::check_receiver(cx, method, name, true);
    if let ReturnType::Type(_, ty) = &method.sig.output {
        cx.error_spanned_by(
            ty,
            format!("`#[{name}]` methods return nothing: their effects go through the `SagaContext`"),
        );
    }
    let typed: Vec<&Type> = method
        .sig
        .inputs
        .iter()
        .filter_map(|arg| match arg {
            FnArg::Typed(pat) => Some(&*pat.ty),
            FnArg::Receiver(_) => None,
        })
        .collect();
    let what = if marker == Marker::Deadline {
        "the deadline, like `d: &PaymentTimedOut`"
    } else {
        "the event, as `&E` or `&Envelope<E>`"
    };
    let expected = format!(
        "`#[{name}]` methods take two parameters after `&mut self`: {what}, and `cx: &mut SagaContext<Self>`"
    );
    let (first, second) = match typed.as_slice() {
        [first, second] => (*first, *second),
        [_, _, extra, ..] => {
            cx.error_spanned_by(extra, expected);
            return None;
        }
        _ => {
            cx.error_at(method.sig.paren_token.span.close(), expected);
            return None;
        }
    };
    let mutable_context = matches!(second, Type::Reference(r) if r.mutability.is_some());
    if !mutable_context {
        cx.error_spanned_by(
            second,
            "the second parameter is the step's context, `cx: &mut SagaContext<Self>`",
        );
    }
    let Some(referenced) = handler::shared_reference(first) else {
        cx.error_spanned_by(
            first,
            format!("the first parameter of a `#[{name}]` method is a shared reference to {what}"),
        );
        return None;
    };
    if !mutable_context {
        return None;
    }
    Some(match handler::envelope_payload(referenced) {
        Some(payload) => (payload, true),
        None => (referenced, false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::saga::attr::saga_attrs;
    use syn::parse_quote;

    fn build(
        args: proc_macro2::TokenStream,
        mut item: ItemImpl,
    ) -> (Option<(String, usize, usize)>, Vec<String>) {
        let cx = Ctxt::new();
        let attrs = saga_attrs(&cx, args);
        let markers = strip_markers(&mut item);
        let ir = SagaImpl::from_ast(&cx, &attrs, &item, &markers)
            .map(|ir| (ir.name, ir.events.len(), ir.deadlines.len()));
        let errors = cx
            .check()
            .err()
            .map(|e| e.into_iter().map(|e| e.to_string()).collect())
            .unwrap_or_default();
        (ir, errors)
    }

    #[test]
    fn collects_event_and_deadline_handlers() {
        let (ir, errors) = build(
            quote::quote!(commands = ShopCommand),
            parse_quote! {
                impl Checkout {
                    #[start(key = order_id)] fn placed(&mut self, e: &OrderPlaced, cx: &mut SagaContext<Self>) {}
                    #[handle(key = order_id)] fn paid(&mut self, e: &Envelope<OrderPaid>, cx: &mut SagaContext<Self>) {}
                    #[end(key = order_id)] fn shipped(&mut self, e: &OrderShipped, cx: &mut SagaContext<Self>) {}
                    #[deadline] fn timed_out(&mut self, d: &Timeout, cx: &mut SagaContext<Self>) {}
                    fn helper(&self) {}
                }
            },
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(ir, Some(("checkout".to_owned(), 3, 1)));
    }

    #[test]
    fn every_independent_mistake_is_reported() {
        let (_, errors) = build(
            quote::quote!(version = 0),
            parse_quote! {
                impl Checkout {
                    #[handle] fn paid(&mut self, e: &OrderPaid, cx: &mut SagaContext<Self>) {}
                    #[handle(key = order_id)] async fn late(&self, e: OrderLate) -> bool {}
                }
            },
        );
        // version, commands; missing key; async, receiver, return type, parameters; no start.
        assert_eq!(errors.len(), 8, "{errors:#?}");
        assert!(
            errors.iter().any(|e| e.contains("needs a `#[start]`")),
            "{errors:?}"
        );
    }
}
