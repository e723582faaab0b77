//! The validated IR the expanders read: built from `syn` input, borrowing it for spans.

use proc_macro2::Span;
use syn::{Data, DeriveInput, Fields, Ident, ImplItem, ImplItemFn, ItemImpl, ReturnType, Type};

use crate::attr::{self, Sp, APPLY, COMMAND};
use crate::ctxt::Ctxt;
use crate::{handler, naming};

/// What `#[derive(DomainEvent)]` was applied to.
pub enum EventInput<'a> {
    Struct(EventStruct<'a>),
    Enum(EventEnum<'a>),
}

/// An event struct: one type name and version.
pub struct EventStruct<'a> {
    pub ident: &'a Ident,
    /// The path of the runtime crate (`::eventcore` unless renamed with `crate = "..."`).
    pub krate: syn::Path,
    pub event_type: String,
    pub version: u32,
    pub aggregate: Option<String>,
    /// The previous version's struct, converted with `From` (`upcast_from = ...`).
    pub upcast_from: Option<Box<Type>>,
}

/// An enum of event structs.
pub struct EventEnum<'a> {
    pub ident: &'a Ident,
    pub krate: syn::Path,
    pub variants: Vec<EventVariant<'a>>,
    /// Some variants were left out after an error: matches need a fallback arm to compile.
    pub incomplete: bool,
}

/// `Opened(AccountOpened)`.
pub struct EventVariant<'a> {
    pub ident: &'a Ident,
    pub ty: &'a Type,
}

impl<'a> EventInput<'a> {
    /// Builds the IR, reporting every problem to `cx`. `None` when nothing sensible can be generated.
    pub fn from_ast(cx: &Ctxt, input: &'a DeriveInput) -> Option<Self> {
        let attrs = attr::event_attrs(cx, &input.attrs);
        if !input.generics.params.is_empty() {
            cx.error_spanned_by(
                &input.generics,
                "`DomainEvent` cannot be derived for generic types: an event type has one fixed name and schema",
            );
            return None;
        }
        match &input.data {
            Data::Struct(_) => Some(EventInput::Struct(EventStruct::new(cx, &input.ident, attrs))),
            Data::Enum(data) => {
                for (key, span) in attrs.keys.iter().filter(|(key, _)| *key != attr::CRATE) {
                    cx.error_at(
                        *span,
                        format!("`{key}` belongs on each event struct, not on an enum of events"),
                    );
                }
                let variants: Vec<_> = data
                    .variants
                    .iter()
                    .filter_map(|v| EventVariant::new(cx, v))
                    .collect();
                Some(EventInput::Enum(EventEnum {
                    ident: &input.ident,
                    krate: runtime_path(attrs.krate),
                    incomplete: variants.len() < data.variants.len(),
                    variants,
                }))
            }
            Data::Union(data) => {
                cx.error_spanned_by(
                    data.union_token,
                    "`DomainEvent` cannot be derived for unions: use a struct, or an enum of event structs",
                );
                None
            }
        }
    }
}

impl<'a> EventStruct<'a> {
    fn new(cx: &Ctxt, ident: &'a Ident, attrs: attr::EventAttrs) -> Self {
        let mut aggregate_valid = true;
        if let Some(aggregate) = &attrs.aggregate {
            if let Some(why) = naming::invalid_aggregate_name(&aggregate.value) {
                cx.error_at(aggregate.span, why);
                aggregate_valid = false;
            }
        }
        let krate = runtime_path(attrs.krate);
        let aggregate = attrs.aggregate.map(|sp| sp.value);
        let event_type = match attrs.name {
            Some(Sp { value, span }) => {
                if let Some(why) = naming::invalid_name("event name", &value) {
                    cx.error_at(span, why);
                }
                value
            }
            None => {
                let value = naming::default_event_type(&ident.to_string(), aggregate.as_deref());
                // A bad aggregate name is reported once, at the aggregate.
                if let Some(why) = naming::invalid_name("event name", &value).filter(|_| aggregate_valid) {
                    cx.error_spanned_by(ident, format!("{why}; set one with `#[event(name = \"...\")]`"));
                }
                value
            }
        };
        let version = match attrs.version {
            Some(Sp { value: 0, span }) => {
                cx.error_at(span, "event versions start at 1");
                1
            }
            Some(sp) => sp.value,
            None => 1,
        };
        EventStruct {
            ident,
            krate,
            event_type,
            version,
            aggregate,
            upcast_from: attrs.upcast_from.map(|sp| Box::new(sp.value)),
        }
    }
}

impl<'a> EventVariant<'a> {
    fn new(cx: &Ctxt, variant: &'a syn::Variant) -> Option<Self> {
        for attr in variant.attrs.iter().filter(|a| a.path().is_ident(attr::EVENT)) {
            cx.error_spanned_by(
                attr,
                "`#[event(...)]` goes on the event struct, not on a variant of the event enum",
            );
        }
        match &variant.fields {
            Fields::Unnamed(fields) if fields.unnamed.len() == 1 => Some(EventVariant {
                ident: &variant.ident,
                ty: &fields.unnamed[0].ty,
            }),
            _ => {
                cx.error_spanned_by(
                    variant,
                    format!(
                        "each variant of an event enum wraps exactly one event struct, like `{0}({0}Event)`",
                        variant.ident
                    ),
                );
                None
            }
        }
    }
}

/// The runtime crate's path: `::eventcore` unless `crate = "..."` says otherwise.
fn runtime_path(krate: Option<syn::Path>) -> syn::Path {
    krate.unwrap_or_else(|| syn::parse_quote!(::eventcore))
}

/// An `#[aggregate]` impl block.
pub struct AggregateImpl<'a> {
    pub item: &'a ItemImpl,
    pub krate: syn::Path,
    pub aggregate_type: String,
    pub events: &'a Type,
    pub error: &'a Type,
    pub commands: Vec<Command<'a>>,
    pub applies: Vec<ApplyFn<'a>>,
    pub snapshots: Option<Snapshots>,
}

/// `snapshot_every = N` (and `snapshot_version = V`): snapshot the state as JSON every N events.
pub struct Snapshots {
    pub every: u64,
    pub version: u32,
}

/// A `#[command]` method.
pub struct Command<'a> {
    pub method: &'a Ident,
    pub command: &'a Type,
    /// The declared return type, where a mismatch with `Handle` is reported.
    pub output: &'a Type,
}

/// An `#[apply]` method.
pub struct ApplyFn<'a> {
    pub method: &'a Ident,
    pub event: &'a Type,
}

/// The role a method's marker attribute gives it.
#[derive(Clone, Copy, PartialEq)]
pub enum Role {
    Command,
    Apply,
}

impl Role {
    fn of(attr: &syn::Attribute) -> Option<Self> {
        if attr.path().is_ident(COMMAND) {
            Some(Role::Command)
        } else if attr.path().is_ident(APPLY) {
            Some(Role::Apply)
        } else {
            None
        }
    }
}

/// Removes `#[command]` and `#[apply]` from the methods of `item`, returning each method's roles.
pub fn strip_markers(item: &mut ItemImpl) -> Vec<Vec<(Role, syn::Attribute)>> {
    handler::strip_markers(item, Role::of)
}

impl<'a> AggregateImpl<'a> {
    /// Builds the IR of `item` (markers already stripped, `roles` from [`strip_markers`]).
    pub fn from_ast(
        cx: &Ctxt,
        attrs: &'a attr::AggregateAttrs,
        item: &'a ItemImpl,
        roles: &[Vec<(Role, syn::Attribute)>],
    ) -> Option<Self> {
        if let Some((_, path, _)) = &item.trait_ {
            cx.error_spanned_by(
                path,
                "`#[aggregate]` goes on an inherent `impl` block, like `#[aggregate(events = E, error = Err)] impl Account { ... }`",
            );
            return None;
        }
        if attrs.events.is_none() {
            cx.error_at(
                Span::call_site(),
                "`#[aggregate]` needs `events = ...`, the enum of the aggregate's events",
            );
        }
        if attrs.error.is_none() {
            cx.error_at(
                Span::call_site(),
                "`#[aggregate]` needs `error = ...`, the error type its commands return",
            );
        }
        let aggregate_type = aggregate_type(cx, attrs, &item.self_ty);
        let snapshots = snapshots(cx, attrs);

        let mut commands = Vec::new();
        let mut applies = Vec::new();
        for (impl_item, roles) in item.items.iter().zip(roles) {
            let ImplItem::Fn(method) = impl_item else { continue };
            match roles.as_slice() {
                [] => {}
                [(Role::Command, attr)] => commands.extend(command(cx, method, attr)),
                [(Role::Apply, attr)] => applies.extend(apply(cx, method, attr)),
                [_, (_, second), ..] => {
                    cx.error_spanned_by(second, "a method takes one of `#[command]` and `#[apply]`, once")
                }
            }
        }

        Some(AggregateImpl {
            item,
            krate: runtime_path(attrs.krate.clone()),
            aggregate_type: aggregate_type?,
            events: attrs.events.as_ref()?,
            error: attrs.error.as_ref()?,
            commands,
            applies,
            snapshots,
        })
    }
}

fn snapshots(cx: &Ctxt, attrs: &attr::AggregateAttrs) -> Option<Snapshots> {
    if let Some(Sp { value: 0, span }) = attrs.snapshot_every {
        cx.error_at(span, "`snapshot_every` is a number of events, 1 or more");
    }
    if let Some(Sp { value: 0, span }) = attrs.snapshot_version {
        cx.error_at(span, "snapshot versions start at 1");
    }
    match (&attrs.snapshot_every, &attrs.snapshot_version) {
        (Some(every), version) => Some(Snapshots {
            every: every.value,
            version: version.as_ref().map_or(1, |v| v.value),
        }),
        (None, Some(version)) => {
            cx.error_at(
                version.span,
                "`snapshot_version` needs `snapshot_every = N` to take snapshots",
            );
            None
        }
        (None, None) => None,
    }
}

fn aggregate_type(cx: &Ctxt, attrs: &attr::AggregateAttrs, self_ty: &Type) -> Option<String> {
    if let Some(name) = &attrs.name {
        if let Some(why) = naming::invalid_aggregate_name(&name.value) {
            cx.error_at(name.span, why);
        }
        return Some(name.value.clone());
    }
    let Type::Path(path) = self_ty else {
        cx.error_spanned_by(
            self_ty,
            "cannot name this aggregate type: add `name = \"...\"` to `#[aggregate]`",
        );
        return None;
    };
    let ident = &path.path.segments.last()?.ident;
    let name = naming::snake_case(&ident.to_string());
    if let Some(why) = naming::invalid_aggregate_name(&name) {
        cx.error_spanned_by(
            ident,
            format!("{why}; set one with `#[aggregate(name = \"...\")]`"),
        );
    }
    Some(name)
}

/// The checks both roles share: marker without arguments, no `async`, no generics.
fn check_common(cx: &Ctxt, method: &ImplItemFn, attr: &syn::Attribute, marker: &str) {
    handler::check_no_arguments(cx, attr, marker);
    handler::check_sync_and_not_generic(
        cx,
        method,
        marker,
        "deciding and applying are pure, synchronous steps",
    );
}

fn command<'a>(cx: &Ctxt, method: &'a ImplItemFn, attr: &syn::Attribute) -> Option<Command<'a>> {
    check_common(cx, method, attr, COMMAND);
    handler::check_receiver(cx, method, COMMAND, false);
    let param = handler::single_parameter(cx, method, "the command, by value");
    let command = match param {
        Some(Type::Reference(reference)) => {
            cx.error_spanned_by(
                reference,
                "the command parameter of a `#[command]` method is taken by value, like `cmd: OpenAccount`",
            );
            None
        }
        other => other,
    };
    let output = match &method.sig.output {
        ReturnType::Type(_, ty) => Some(&**ty),
        ReturnType::Default => {
            cx.error_at(
                method.sig.paren_token.span.close(),
                "`#[command]` methods return `Result<Vec<Event>, Error>` with the aggregate's event and error types",
            );
            None
        }
    };
    Some(Command {
        method: &method.sig.ident,
        command: command?,
        output: output?,
    })
}

fn apply<'a>(cx: &Ctxt, method: &'a ImplItemFn, attr: &syn::Attribute) -> Option<ApplyFn<'a>> {
    check_common(cx, method, attr, APPLY);
    handler::check_receiver(cx, method, APPLY, true);
    let param = handler::single_parameter(cx, method, "the event, by reference");
    let event = match param {
        Some(ty) if handler::shared_reference(ty).is_some() => handler::shared_reference(ty),
        Some(other) => {
            cx.error_spanned_by(
                other,
                "the event parameter of an `#[apply]` method is a shared reference, like `event: &AccountOpened`",
            );
            None
        }
        None => None,
    };
    if let ReturnType::Type(_, ty) = &method.sig.output {
        cx.error_spanned_by(
            ty,
            "`#[apply]` methods return nothing: applying an event cannot fail, it has already happened",
        );
    }
    Some(ApplyFn {
        method: &method.sig.ident,
        event: event?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    fn errors(cx: Ctxt) -> Vec<String> {
        cx.check()
            .err()
            .map(|e| e.into_iter().map(|e| e.to_string()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn event_struct_ir_carries_name_version_and_aggregate() {
        let input: DeriveInput = parse_quote! {
            #[event(aggregate = "account", version = 2)]
            struct MoneyDeposited { amount: i64 }
        };
        let cx = Ctxt::new();
        let Some(EventInput::Struct(event)) = EventInput::from_ast(&cx, &input) else {
            panic!("expected a struct");
        };
        assert_eq!(event.event_type, "account.money_deposited");
        assert_eq!(event.version, 2);
        assert_eq!(event.aggregate.as_deref(), Some("account"));
        assert!(errors(cx).is_empty());
    }

    #[test]
    fn event_struct_errors_are_all_collected() {
        let input: DeriveInput = parse_quote! {
            #[event(name = "Bad Name", version = 0)]
            struct Thing;
        };
        let cx = Ctxt::new();
        assert!(
            EventInput::from_ast(&cx, &input).is_some(),
            "a fallback expansion is kept"
        );
        let errors = errors(cx);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("upper case"));
        assert_eq!(errors[1], "event versions start at 1");
    }

    #[test]
    fn event_enum_keeps_good_variants_and_reports_bad_ones() {
        let input: DeriveInput = parse_quote! {
            enum AccountEvent { Opened(AccountOpened), Closed, Moved { to: u32 } }
        };
        let cx = Ctxt::new();
        let Some(EventInput::Enum(set)) = EventInput::from_ast(&cx, &input) else {
            panic!("expected an enum");
        };
        assert_eq!(set.variants.len(), 1);
        assert!(set.incomplete);
        assert_eq!(errors(cx).len(), 2);
    }

    #[test]
    fn generic_types_and_unions_are_rejected() {
        for input in [
            parse_quote!(
                struct Wrapped<T>(T);
            ),
            parse_quote!(union Bits { a: u32, b: f32 }),
        ] {
            let input: DeriveInput = input;
            let cx = Ctxt::new();
            assert!(EventInput::from_ast(&cx, &input).is_none());
            assert_eq!(errors(cx).len(), 1);
        }
    }

    #[test]
    fn aggregate_ir_collects_commands_and_applies() {
        let mut item: ItemImpl = parse_quote! {
            impl BankAccount {
                #[command]
                fn open(&self, cmd: OpenAccount) -> Result<Vec<AccountEvent>, AccountError> { todo!() }
                #[apply]
                fn opened(&mut self, e: &AccountOpened) {}
                fn helper(&self) {}
            }
        };
        let cx = Ctxt::new();
        let attrs = attr::aggregate_attrs(&cx, quote::quote!(events = AccountEvent, error = AccountError));
        let roles = strip_markers(&mut item);
        let ir = AggregateImpl::from_ast(&cx, &attrs, &item, &roles);
        let ir = ir.expect("valid aggregate");
        assert_eq!(ir.aggregate_type, "bank_account");
        assert_eq!(ir.commands.len(), 1);
        assert_eq!(ir.commands[0].method, "open");
        assert_eq!(ir.applies.len(), 1);
        assert_eq!(ir.applies[0].method, "opened");
        assert!(ir.snapshots.is_none());
        drop(ir);
        assert!(errors(cx).is_empty());
        let stripped = quote::ToTokens::to_token_stream(&item).to_string();
        assert!(
            !stripped.contains("command") && !stripped.contains("apply"),
            "{stripped}"
        );
    }

    #[test]
    fn aggregate_signature_errors_are_all_collected() {
        let mut item: ItemImpl = parse_quote! {
            impl Account {
                #[command]
                async fn open(&mut self, cmd: &OpenAccount) {}
                #[apply]
                fn opened<T>(&self, e: AccountOpened) -> bool { true }
            }
        };
        let cx = Ctxt::new();
        let attrs = attr::aggregate_attrs(&cx, quote::quote!(events = AccountEvent));
        let roles = strip_markers(&mut item);
        let _ = AggregateImpl::from_ast(&cx, &attrs, &item, &roles);
        let errors = errors(cx);
        // missing `error`; async, receiver, by-reference command, no return type;
        // generic, receiver, by-value event, return type.
        assert_eq!(errors.len(), 9, "{errors:#?}");
    }
}
