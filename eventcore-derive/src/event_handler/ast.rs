//! The validated IR of an `#[event_handler]` impl block, borrowing the `syn` input for spans.

use syn::{Attribute, GenericArgument, Ident, ImplItemFn, ItemImpl, PathArguments, ReturnType, Type};

use super::attr::HandlerAttrs;
use crate::attr::{EVENT_HANDLER, ON};
use crate::ctxt::Ctxt;
use crate::handler::{self, On};

/// An `#[event_handler]` impl block.
pub struct HandlerImpl<'a> {
    pub item: &'a ItemImpl,
    pub krate: syn::Path,
    pub name: String,
    pub handlers: Vec<OnFn<'a>>,
}

/// An `#[on]` async method.
pub struct OnFn<'a> {
    pub method: &'a Ident,
    /// The event struct it handles.
    pub event: &'a Type,
    /// Whether it takes `&Envelope<E>` rather than `&E`.
    pub envelope: bool,
    /// The declared return type, where one that is not `Result<(), E>` is reported.
    pub output: &'a Type,
    /// `E` of a return type written `Result<(), E>`, where an `E` that is not an error is reported.
    pub error: Option<&'a Type>,
}

impl<'a> HandlerImpl<'a> {
    /// Builds the IR of `item` (markers already stripped by [`handler::strip_on_markers`]).
    pub fn from_ast(
        cx: &Ctxt,
        attrs: &HandlerAttrs,
        item: &'a ItemImpl,
        markers: &[Vec<(On, Attribute)>],
    ) -> Option<Self> {
        if !handler::check_inherent(
            cx,
            item,
            "#[event_handler] impl Welcome { ... }",
            "an event handler has one name, one checkpoint and one set of dead letters",
        ) {
            return None;
        }
        let name = handler::snake_name(
            cx,
            attrs.name.as_ref(),
            &item.self_ty,
            "event handler",
            EVENT_HANDLER,
        );
        let handlers = handler::on_methods(
            cx,
            item,
            markers,
            EVENT_HANDLER,
            "#[on] async fn opened(&self, e: &AccountOpened) -> Result<(), MailDown> { ... }",
        )
        .into_iter()
        .filter_map(|(method, attr)| on(cx, method, attr))
        .collect();

        Some(HandlerImpl {
            item,
            krate: attrs
                .krate
                .clone()
                .unwrap_or_else(|| syn::parse_quote!(::eventcore)),
            name: name?,
            handlers,
        })
    }
}

fn on<'a>(cx: &Ctxt, method: &'a ImplItemFn, attr: &Attribute) -> Option<OnFn<'a>> {
    handler::check_no_arguments(cx, attr, ON);
    handler::check_async_and_not_generic(cx, method, ON, "an `#[event_handler]` awaits its handlers");
    handler::check_receiver(cx, method, ON, false);
    let parameter = handler::event_parameter(cx, method);
    let output = match &method.sig.output {
        ReturnType::Type(_, ty) => Some(&**ty),
        ReturnType::Default => {
            cx.error_spanned_by(
                &method.sig.ident,
                "`#[on]` methods of an `#[event_handler]` return `Result<(), E>` with an error type `E`",
            );
            None
        }
    };
    let (event, envelope) = parameter?;
    let output = output?;
    Some(OnFn {
        method: &method.sig.ident,
        event,
        envelope,
        output,
        error: result_error(output),
    })
}

/// `E` of `Result<(), E>` (any path ending in `Result`), or `None`.
fn result_error(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if path.qself.is_some() || last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.iter().collect::<Vec<_>>().as_slice() {
        [GenericArgument::Type(Type::Tuple(unit)), GenericArgument::Type(error)] if unit.elems.is_empty() => {
            Some(error)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event_handler::attr::handler_attrs;
    use syn::parse_quote;

    fn build(args: proc_macro2::TokenStream, mut item: ItemImpl) -> (Option<(String, usize)>, Vec<String>) {
        let cx = Ctxt::new();
        let attrs = handler_attrs(&cx, args);
        let markers = handler::strip_on_markers(&mut item);
        let ir = HandlerImpl::from_ast(&cx, &attrs, &item, &markers).map(|ir| (ir.name, ir.handlers.len()));
        let errors = cx
            .check()
            .err()
            .map(|e| e.into_iter().map(|e| e.to_string()).collect())
            .unwrap_or_default();
        (ir, errors)
    }

    #[test]
    fn collects_async_handlers_with_their_error_types() {
        let mut item: ItemImpl = parse_quote! {
            impl Welcome {
                #[on] async fn opened(&self, e: &Envelope<AccountOpened>) -> Result<(), MailDown> { Ok(()) }
                #[on] async fn deposited(&self, e: &MoneyDeposited) -> Outcome { Ok(()) }
                fn helper(&self) {}
            }
        };
        let cx = Ctxt::new();
        let attrs = handler_attrs(&cx, quote::quote!());
        let markers = handler::strip_on_markers(&mut item);
        let ir = HandlerImpl::from_ast(&cx, &attrs, &item, &markers).expect("valid event handler");
        assert_eq!(ir.name, "welcome");
        assert_eq!(ir.handlers.len(), 2);
        assert!(ir.handlers[0].envelope && ir.handlers[0].error.is_some());
        assert!(!ir.handlers[1].envelope && ir.handlers[1].error.is_none());
        drop(ir);
        assert!(cx.check().is_ok());
    }

    #[test]
    fn signature_errors_are_all_collected() {
        let (ir, errors) = build(
            quote::quote!(name = "Bad-Name"),
            parse_quote! {
                impl Welcome {
                    #[on] fn a(&self, e: &AccountOpened) -> Result<(), MailDown> { Ok(()) }
                    #[on] async fn b(&mut self, e: &MoneyDeposited) -> Result<(), MailDown> { Ok(()) }
                    #[on(key = owner)] async fn c(e: &MoneyWithdrawn) {}
                }
            },
        );
        assert!(ir.is_some());
        // name; not async; `&mut self`; arguments, no receiver, no return type.
        assert_eq!(errors.len(), 6, "{errors:#?}");
        assert!(errors[1].contains("are `async fn`"), "{errors:#?}");
    }

    #[test]
    fn an_event_handler_without_handlers_is_an_error() {
        let (_, errors) = build(
            quote::quote!(),
            parse_quote!(impl Welcome { fn helper(&self) {} }),
        );
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].contains("a `#[event_handler]` needs at least one `#[on]`"),
            "{errors:?}"
        );
    }

    #[test]
    fn result_error_reads_only_unit_results() {
        let ty: Type = parse_quote!(std::result::Result<(), MailDown>);
        assert!(result_error(&ty).is_some());
        assert!(result_error(&parse_quote!(Result<u8, MailDown>)).is_none());
        assert!(result_error(&parse_quote!(bool)).is_none());
    }
}
