//! Parses `#[projection(...)]` and `#[on(...)]` into typed values that keep their spans.

use proc_macro2::{Span, TokenStream};
use syn::{Attribute, LitStr, Member};

use crate::attr::{crate_path, int_literal, path_text, Attr, Sp, CRATE, KEY, NAME, ON, PROJECTION, VERSION};
use crate::ctxt::Ctxt;

const PROJECTION_KEYS: &str = "`name`, `version`, `crate`";
const ON_KEYS: &str = "`key`";

/// The keys of `#[projection(...)]`.
pub struct ProjectionAttrs {
    pub name: Option<Sp<String>>,
    pub version: Option<Sp<u32>>,
    pub krate: Option<syn::Path>,
}

/// Parses the arguments of `#[projection(...)]`, reporting problems to `cx`.
pub fn projection_attrs(cx: &Ctxt, args: TokenStream) -> ProjectionAttrs {
    let mut name = Attr::none(cx, PROJECTION, NAME);
    let mut version = Attr::none(cx, PROJECTION, VERSION);
    let mut krate = Attr::none(cx, PROJECTION, CRATE);

    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident(NAME) {
            let lit: LitStr = meta.value()?.parse()?;
            name.set(&meta, lit.value(), lit.span());
        } else if meta.path.is_ident(VERSION) {
            let lit = int_literal(&meta, "version = 2")?;
            version.set(&meta, lit.base10_parse()?, lit.span());
        } else if meta.path.is_ident(CRATE) {
            let path = crate_path(&meta)?;
            krate.set(&meta, path, Span::call_site());
        } else {
            return Err(meta.error(format!(
                "unknown `projection` attribute `{}`, expected one of {PROJECTION_KEYS}",
                path_text(&meta.path)
            )));
        }
        Ok(())
    });
    if let Err(err) = syn::parse::Parser::parse2(parser, args) {
        cx.syn_error(err);
    }

    ProjectionAttrs {
        name: name.get(),
        version: version.get(),
        krate: krate.get().map(|sp| sp.value),
    }
}

/// The keys of one `#[on]` / `#[on(key = field)]`.
#[derive(Default)]
pub struct OnAttrs {
    /// The payload field that keys the document, with the span of the field's token.
    pub key: Option<Member>,
}

/// Parses one `#[on]` marker, reporting problems to `cx`.
pub fn on_attrs(cx: &Ctxt, attr: &Attribute) -> OnAttrs {
    if matches!(attr.meta, syn::Meta::Path(_)) {
        return OnAttrs::default();
    }
    let mut key = Attr::none(cx, ON, KEY);
    let parsed = attr.parse_nested_meta(|meta| {
        if meta.path.is_ident(KEY) {
            let value = meta.value()?;
            let span = value.span();
            let member: Member = value.parse().map_err(|_| {
                syn::Error::new(span, "expected a payload field name, like `key = account_id`")
            })?;
            let member_span = syn::spanned::Spanned::span(&member);
            key.set(&meta, member, member_span);
        } else {
            return Err(meta.error(format!(
                "unknown `on` attribute `{}`, expected {ON_KEYS}",
                path_text(&meta.path)
            )));
        }
        Ok(())
    });
    if let Err(err) = parsed {
        cx.syn_error(err);
    }
    OnAttrs {
        key: key.get().map(|sp| sp.value),
    }
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
    fn parses_projection_options() {
        let cx = Ctxt::new();
        let parsed = projection_attrs(&cx, quote::quote!(name = "summary", version = 3, crate = "::rt"));
        assert!(errors(cx).is_empty());
        assert_eq!(parsed.name.map(|s| s.value).as_deref(), Some("summary"));
        assert_eq!(parsed.version.map(|s| s.value), Some(3));
        assert!(parsed.krate.is_some());
    }

    #[test]
    fn unknown_and_duplicate_projection_keys_are_reported() {
        let cx = Ctxt::new();
        let _ = projection_attrs(&cx, quote::quote!(version = 1, version = 2));
        assert_eq!(errors(cx), ["duplicate `projection` attribute `version`"]);
        let cx = Ctxt::new();
        let _ = projection_attrs(&cx, quote::quote!(events = E));
        assert_eq!(
            errors(cx),
            ["unknown `projection` attribute `events`, expected one of `name`, `version`, `crate`"]
        );
    }

    #[test]
    fn parses_on_key() {
        let cx = Ctxt::new();
        assert!(on_attrs(&cx, &parse_quote!(#[on])).key.is_none());
        let key = on_attrs(&cx, &parse_quote!(#[on(key = owner)])).key;
        assert!(matches!(key, Some(Member::Named(ident)) if ident == "owner"));
        let _ = on_attrs(&cx, &parse_quote!(#[on(field = owner)]));
        assert_eq!(errors(cx), ["unknown `on` attribute `field`, expected `key`"]);
    }
}
