//! Parses `#[event(...)]` and `#[aggregate(...)]` into typed values that keep their spans, and the
//! helpers every macro's attribute parsing shares (`Attr`, `Sp`, `crate = "..."`).

use proc_macro2::Span;
use syn::meta::ParseNestedMeta;
use syn::{Attribute, LitInt, LitStr, Type};

use crate::ctxt::Ctxt;

pub const EVENT: &str = "event";
pub const AGGREGATE: &str = "aggregate";
pub const NAME: &str = "name";
pub const VERSION: &str = "version";
pub const UPCAST_FROM: &str = "upcast_from";
pub const EVENTS: &str = "events";
pub const ERROR: &str = "error";
pub const SNAPSHOT_EVERY: &str = "snapshot_every";
pub const SNAPSHOT_VERSION: &str = "snapshot_version";
pub const CRATE: &str = "crate";
pub const COMMAND: &str = "command";
pub const APPLY: &str = "apply";
pub const PROJECTION: &str = "projection";
pub const ON: &str = "on";
pub const KEY: &str = "key";
pub const EVENT_HANDLER: &str = "event_handler";

const EVENT_KEYS: &str = "`aggregate`, `name`, `version`, `upcast_from`, `crate`";
const AGGREGATE_KEYS: &str = "`events`, `error`, `name`, `snapshot_every`, `snapshot_version`, `crate`";

/// A parsed value with the span of the tokens it came from.
#[derive(Clone)]
pub struct Sp<T> {
    pub value: T,
    pub span: Span,
}

/// One attribute key: set at most once.
pub(crate) struct Attr<'c, T> {
    cx: &'c Ctxt,
    attribute: &'static str,
    key: &'static str,
    value: Option<Sp<T>>,
}

impl<'c, T> Attr<'c, T> {
    pub(crate) fn none(cx: &'c Ctxt, attribute: &'static str, key: &'static str) -> Self {
        Attr {
            cx,
            attribute,
            key,
            value: None,
        }
    }

    /// Stores the value of `meta`, or reports a duplicate key at it.
    pub(crate) fn set(&mut self, meta: &ParseNestedMeta<'_>, value: T, span: Span) {
        if self.value.is_some() {
            self.cx.error_spanned_by(
                &meta.path,
                format!("duplicate `{}` attribute `{}`", self.attribute, self.key),
            );
        } else {
            self.value = Some(Sp { value, span });
        }
    }

    pub(crate) fn get(self) -> Option<Sp<T>> {
        self.value
    }
}

/// The keys of the `#[event(...)]` attributes of one type.
#[derive(Default)]
pub struct EventAttrs {
    pub aggregate: Option<Sp<String>>,
    pub name: Option<Sp<String>>,
    pub version: Option<Sp<u32>>,
    /// `upcast_from = OldStruct`: the previous version, converted with `From`.
    pub upcast_from: Option<Sp<Type>>,
    pub krate: Option<syn::Path>,
    /// Every key present, in order, for rules that reject keys wholesale (enums).
    pub keys: Vec<(&'static str, Span)>,
}

/// Parses every `#[event(...)]` among `attrs`, reporting problems to `cx`.
pub fn event_attrs(cx: &Ctxt, attrs: &[Attribute]) -> EventAttrs {
    let mut aggregate = Attr::none(cx, EVENT, AGGREGATE);
    let mut name = Attr::none(cx, EVENT, NAME);
    let mut version = Attr::none(cx, EVENT, VERSION);
    let mut upcast_from = Attr::none(cx, EVENT, UPCAST_FROM);
    let mut krate = Attr::none(cx, EVENT, CRATE);
    let mut keys = Vec::new();

    for attr in attrs.iter().filter(|a| a.path().is_ident(EVENT)) {
        let parsed = attr.parse_nested_meta(|meta| {
            let key_span = meta.path.get_ident().map_or_else(Span::call_site, |i| i.span());
            if meta.path.is_ident(AGGREGATE) {
                let lit: LitStr = meta.value()?.parse()?;
                keys.push((AGGREGATE, key_span));
                aggregate.set(&meta, lit.value(), lit.span());
            } else if meta.path.is_ident(NAME) {
                let lit: LitStr = meta.value()?.parse()?;
                keys.push((NAME, key_span));
                name.set(&meta, lit.value(), lit.span());
            } else if meta.path.is_ident(VERSION) {
                let lit = int_literal(&meta, "version = 2")?;
                let value = lit.base10_parse::<u32>()?;
                keys.push((VERSION, key_span));
                version.set(&meta, value, lit.span());
            } else if meta.path.is_ident(UPCAST_FROM) {
                let ty: Type = meta.value()?.parse()?;
                keys.push((UPCAST_FROM, key_span));
                let span = syn::spanned::Spanned::span(&ty);
                upcast_from.set(&meta, ty, span);
            } else if meta.path.is_ident(CRATE) {
                let path = crate_path(&meta)?;
                krate.set(&meta, path, key_span);
            } else {
                return Err(meta.error(format!(
                    "unknown `event` attribute `{}`, expected one of {EVENT_KEYS}",
                    path_text(&meta.path)
                )));
            }
            Ok(())
        });
        if let Err(err) = parsed {
            cx.syn_error(err);
        }
    }

    EventAttrs {
        aggregate: aggregate.get(),
        name: name.get(),
        version: version.get(),
        upcast_from: upcast_from.get(),
        krate: krate.get().map(|sp| sp.value),
        keys,
    }
}

/// The keys of `#[aggregate(...)]`.
pub struct AggregateAttrs {
    pub events: Option<Type>,
    pub error: Option<Type>,
    pub name: Option<Sp<String>>,
    pub snapshot_every: Option<Sp<u64>>,
    pub snapshot_version: Option<Sp<u32>>,
    pub krate: Option<syn::Path>,
}

/// Parses the arguments of `#[aggregate(...)]`, reporting problems to `cx`.
pub fn aggregate_attrs(cx: &Ctxt, args: proc_macro2::TokenStream) -> AggregateAttrs {
    let mut events = Attr::none(cx, AGGREGATE, EVENTS);
    let mut error = Attr::none(cx, AGGREGATE, ERROR);
    let mut name = Attr::none(cx, AGGREGATE, NAME);
    let mut snapshot_every = Attr::none(cx, AGGREGATE, SNAPSHOT_EVERY);
    let mut snapshot_version = Attr::none(cx, AGGREGATE, SNAPSHOT_VERSION);
    let mut krate = Attr::none(cx, AGGREGATE, CRATE);

    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident(EVENTS) {
            let ty: Type = meta.value()?.parse()?;
            events.set(&meta, ty, Span::call_site());
        } else if meta.path.is_ident(ERROR) {
            let ty: Type = meta.value()?.parse()?;
            error.set(&meta, ty, Span::call_site());
        } else if meta.path.is_ident(NAME) {
            let lit: LitStr = meta.value()?.parse()?;
            name.set(&meta, lit.value(), lit.span());
        } else if meta.path.is_ident(SNAPSHOT_EVERY) {
            let lit = int_literal(&meta, "snapshot_every = 100")?;
            snapshot_every.set(&meta, lit.base10_parse()?, lit.span());
        } else if meta.path.is_ident(SNAPSHOT_VERSION) {
            let lit = int_literal(&meta, "snapshot_version = 2")?;
            snapshot_version.set(&meta, lit.base10_parse()?, lit.span());
        } else if meta.path.is_ident(CRATE) {
            let path = crate_path(&meta)?;
            krate.set(&meta, path, Span::call_site());
        } else {
            return Err(meta.error(format!(
                "unknown `aggregate` attribute `{}`, expected one of {AGGREGATE_KEYS}",
                path_text(&meta.path)
            )));
        }
        Ok(())
    });
    if let Err(err) = syn::parse::Parser::parse2(parser, args) {
        cx.syn_error(err);
    }

    AggregateAttrs {
        events: events.get().map(|sp| sp.value),
        error: error.get().map(|sp| sp.value),
        name: name.get(),
        snapshot_every: snapshot_every.get(),
        snapshot_version: snapshot_version.get(),
        krate: krate.get().map(|sp| sp.value),
    }
}

/// `crate = "path::to::eventcore"`: where generated code finds the runtime when it is renamed.
pub(crate) fn crate_path(meta: &ParseNestedMeta<'_>) -> syn::Result<syn::Path> {
    let lit: LitStr = meta.value()?.parse()?;
    lit.parse::<syn::Path>()
        .map_err(|_| syn::Error::new(lit.span(), "expected a path, like `crate = \"::my_eventcore\"`"))
}

/// The integer literal value of `meta`, or an error showing `example`.
pub(crate) fn int_literal(meta: &ParseNestedMeta<'_>, example: &str) -> syn::Result<LitInt> {
    let value = meta.value()?;
    let span = value.span();
    value
        .parse::<LitInt>()
        .map_err(|_| syn::Error::new(span, format!("expected an integer, like `{example}`")))
}

pub(crate) fn path_text(path: &syn::Path) -> String {
    quote::ToTokens::to_token_stream(path)
        .to_string()
        .replace(' ', "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    fn event(attrs: &[Attribute]) -> (EventAttrs, Vec<String>) {
        let cx = Ctxt::new();
        let parsed = event_attrs(&cx, attrs);
        let errors = match cx.check() {
            Ok(()) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        };
        (parsed, errors)
    }

    #[test]
    fn parses_every_event_key() {
        let attrs: Vec<Attribute> = vec![
            parse_quote!(#[event(aggregate = "account", version = 2)]),
            parse_quote!(#[event(name = "a.b")]),
        ];
        let (parsed, errors) = event(&attrs);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(parsed.aggregate.map(|s| s.value).as_deref(), Some("account"));
        assert_eq!(parsed.name.map(|s| s.value).as_deref(), Some("a.b"));
        assert_eq!(parsed.version.map(|s| s.value), Some(2));
        assert_eq!(parsed.keys.len(), 3);
    }

    #[test]
    fn reports_unknown_and_duplicate_keys_together() {
        let attrs: Vec<Attribute> = vec![
            parse_quote!(#[event(version = 1, version = 2)]),
            parse_quote!(#[event(aggregat = "x")]),
        ];
        let (parsed, errors) = event(&attrs);
        assert_eq!(parsed.version.map(|s| s.value), Some(1));
        assert_eq!(
            errors,
            [
                "duplicate `event` attribute `version`",
                "unknown `event` attribute `aggregat`, expected one of `aggregate`, `name`, `version`, `upcast_from`, `crate`"
            ]
        );
    }

    #[test]
    fn parses_aggregate_arguments() {
        let cx = Ctxt::new();
        let parsed = aggregate_attrs(
            &cx,
            quote::quote!(events = AccountEvent, error = AccountError, name = "acct"),
        );
        assert!(cx.check().is_ok());
        assert!(parsed.events.is_some() && parsed.error.is_some());
        assert_eq!(parsed.name.map(|s| s.value).as_deref(), Some("acct"));
    }

    #[test]
    fn rejects_unknown_aggregate_key() {
        let cx = Ctxt::new();
        let _ = aggregate_attrs(&cx, quote::quote!(events = E, state = S));
        let err = cx.check().err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                "unknown `aggregate` attribute `state`, expected one of `events`, `error`, `name`, \
                 `snapshot_every`, `snapshot_version`, `crate`"
            )
        );
    }
}
