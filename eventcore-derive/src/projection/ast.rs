//! The validated IR of a `#[projection]` impl block, borrowing the `syn` input for spans.

use syn::{Attribute, Ident, ImplItemFn, ItemImpl, Member, ReturnType, Type};

use super::attr::{on_attrs, ProjectionAttrs};
use crate::attr::{Sp, ON, PROJECTION};
use crate::ctxt::Ctxt;
use crate::handler::{self, On};

/// A `#[projection]` impl block.
pub struct ProjectionImpl<'a> {
    pub item: &'a ItemImpl,
    pub krate: syn::Path,
    pub name: String,
    pub version: u32,
    pub handlers: Vec<OnFn<'a>>,
}

/// An `#[on]` method.
pub struct OnFn<'a> {
    pub method: &'a Ident,
    /// The event struct it handles.
    pub event: &'a Type,
    /// Whether it takes `&Envelope<E>` rather than `&E`.
    pub envelope: bool,
    /// `#[on(key = field)]`: the payload field keying the document (default: the aggregate id).
    pub key: Option<Member>,
    /// The declared return type, where an unsupported one is reported.
    pub output: Option<&'a Type>,
}

/// Removes `#[on]` from the methods of `item`, returning each method's markers.
pub fn strip_markers(item: &mut ItemImpl) -> Vec<Vec<(On, Attribute)>> {
    handler::strip_on_markers(item)
}

impl<'a> ProjectionImpl<'a> {
    /// Builds the IR of `item` (markers already stripped, `markers` from [`strip_markers`]).
    pub fn from_ast(
        cx: &Ctxt,
        attrs: &ProjectionAttrs,
        item: &'a ItemImpl,
        markers: &[Vec<(On, Attribute)>],
    ) -> Option<Self> {
        if !handler::check_inherent(
            cx,
            item,
            "#[projection] impl AccountSummary { ... }",
            "a projection has one name and one set of documents",
        ) {
            return None;
        }
        let name = handler::snake_name(cx, attrs.name.as_ref(), &item.self_ty, "projection", PROJECTION);
        let version = match attrs.version {
            Some(Sp { value: 0, span }) => {
                cx.error_at(span, "projection versions start at 1");
                1
            }
            Some(Sp { value, .. }) => value,
            None => 1,
        };

        let handlers = handler::on_methods(
            cx,
            item,
            markers,
            PROJECTION,
            "#[on] fn opened(&mut self, e: &AccountOpened) { ... }",
        )
        .into_iter()
        .filter_map(|(method, attr)| on(cx, method, attr))
        .collect();

        Some(ProjectionImpl {
            item,
            krate: attrs
                .krate
                .clone()
                .unwrap_or_else(|| syn::parse_quote!(::eventcore)),
            name: name?,
            version,
            handlers,
        })
    }
}

fn on<'a>(cx: &Ctxt, method: &'a ImplItemFn, attr: &Attribute) -> Option<OnFn<'a>> {
    let attrs = on_attrs(cx, attr);
    handler::check_sync_and_not_generic(
        cx,
        method,
        ON,
        "the runner commits a handler's changes with its checkpoint",
    );
    handler::check_receiver(cx, method, ON, true);
    let (event, envelope) = handler::event_parameter(cx, method)?;
    let output = match &method.sig.output {
        ReturnType::Type(_, ty) => Some(&**ty),
        ReturnType::Default => None,
    };
    Some(OnFn {
        method: &method.sig.ident,
        event,
        envelope,
        key: attrs.key,
        output,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::projection::attr::projection_attrs;
    use syn::parse_quote;

    fn build(
        args: proc_macro2::TokenStream,
        mut item: ItemImpl,
    ) -> (Option<(String, u32, usize)>, Vec<String>) {
        let cx = Ctxt::new();
        let attrs = projection_attrs(&cx, args);
        let markers = strip_markers(&mut item);
        let ir = ProjectionImpl::from_ast(&cx, &attrs, &item, &markers)
            .map(|ir| (ir.name, ir.version, ir.handlers.len()));
        let errors = cx
            .check()
            .err()
            .map(|e| e.into_iter().map(|e| e.to_string()).collect())
            .unwrap_or_default();
        (ir, errors)
    }

    #[test]
    fn collects_handlers_with_keys_and_envelopes() {
        let mut item: ItemImpl = parse_quote! {
            impl AccountSummary {
                #[on] fn opened(&mut self, e: &AccountOpened) {}
                #[on(key = owner)] fn renamed(&mut self, e: &eventcore::Envelope<OwnerRenamed>) {}
                fn helper(&self) {}
            }
        };
        let cx = Ctxt::new();
        let attrs = projection_attrs(&cx, quote::quote!());
        let markers = strip_markers(&mut item);
        let ir = ProjectionImpl::from_ast(&cx, &attrs, &item, &markers).expect("valid projection");
        assert_eq!((ir.name.as_str(), ir.version), ("account_summary", 1));
        assert_eq!(ir.handlers.len(), 2);
        assert!(!ir.handlers[0].envelope && ir.handlers[0].key.is_none());
        assert!(ir.handlers[1].envelope && ir.handlers[1].key.is_some());
        drop(ir);
        assert!(cx.check().is_ok());
        let stripped = quote::ToTokens::to_token_stream(&item).to_string();
        assert!(!stripped.contains("# [on"), "{stripped}");
    }

    #[test]
    fn options_and_signature_errors_are_all_collected() {
        let (ir, errors) = build(
            quote::quote!(name = "Bad-Name", version = 0),
            parse_quote! {
                impl Summary {
                    #[on] async fn a<T>(&self, e: AccountOpened, extra: u8) {}
                    #[on] #[on] fn b(&mut self, e: &mut AccountOpened) {}
                }
            },
        );
        assert_eq!(ir.map(|(_, version, _)| version), Some(1));
        // name, version; async, generic, receiver, extra parameter; second marker.
        assert_eq!(errors.len(), 7, "{errors:#?}");
    }

    #[test]
    fn a_projection_without_handlers_is_an_error() {
        let (_, errors) = build(
            quote::quote!(),
            parse_quote!(impl Summary { fn helper(&self) {} }),
        );
        assert_eq!(errors.len(), 1);
        assert!(errors[0].contains("at least one `#[on]`"), "{errors:?}");
    }
}
