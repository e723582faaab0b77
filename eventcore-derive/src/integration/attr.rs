//! Parses `#[integration(...)]` into typed values that keep their spans.

use proc_macro2::Span;
use syn::{Attribute, LitStr};

use crate::attr::{crate_path, int_literal, path_text, Attr, Sp, CRATE, NAME, VERSION};
use crate::ctxt::Ctxt;

pub const INTEGRATION: &str = "integration";

const INTEGRATION_KEYS: &str = "`name`, `version`, `crate`";

/// The keys of the `#[integration(...)]` attributes of one type.
#[derive(Default)]
pub struct IntegrationAttrs {
    pub name: Option<Sp<String>>,
    pub version: Option<Sp<u32>>,
    pub krate: Option<syn::Path>,
    /// Whether any `#[integration(...)]` attribute is present at all.
    pub present: bool,
}

/// Parses every `#[integration(...)]` among `attrs`, reporting problems to `cx`.
pub fn integration_attrs(cx: &Ctxt, attrs: &[Attribute]) -> IntegrationAttrs {
    let mut name = Attr::none(cx, INTEGRATION, NAME);
    let mut version = Attr::none(cx, INTEGRATION, VERSION);
    let mut krate = Attr::none(cx, INTEGRATION, CRATE);
    let mut present = false;

    for attr in attrs.iter().filter(|a| a.path().is_ident(INTEGRATION)) {
        present = true;
        let parsed = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident(NAME) {
                let lit: LitStr = meta.value()?.parse()?;
                name.set(&meta, lit.value(), lit.span());
            } else if meta.path.is_ident(VERSION) {
                let lit = int_literal(&meta, "version = 2")?;
                let value = lit.base10_parse::<u32>()?;
                version.set(&meta, value, lit.span());
            } else if meta.path.is_ident(CRATE) {
                let path = crate_path(&meta)?;
                let span = meta.path.get_ident().map_or_else(Span::call_site, |i| i.span());
                krate.set(&meta, path, span);
            } else {
                return Err(meta.error(format!(
                    "unknown `integration` attribute `{}`, expected one of {INTEGRATION_KEYS}",
                    path_text(&meta.path)
                )));
            }
            Ok(())
        });
        if let Err(err) = parsed {
            cx.syn_error(err);
        }
    }

    IntegrationAttrs {
        name: name.get(),
        version: version.get(),
        krate: krate.get().map(|sp| sp.value),
        present,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    fn parse(attrs: &[Attribute]) -> (IntegrationAttrs, Vec<String>) {
        let cx = Ctxt::new();
        let parsed = integration_attrs(&cx, attrs);
        let errors = match cx.check() {
            Ok(()) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        };
        (parsed, errors)
    }

    #[test]
    fn parses_every_key() {
        let attrs: Vec<Attribute> =
            vec![parse_quote!(#[integration(name = "billing.invoice_paid", version = 3, crate = "::x")])];
        let (parsed, errors) = parse(&attrs);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            parsed.name.map(|s| s.value).as_deref(),
            Some("billing.invoice_paid")
        );
        assert_eq!(parsed.version.map(|s| s.value), Some(3));
        assert!(parsed.krate.is_some() && parsed.present);
    }

    #[test]
    fn reports_unknown_and_duplicate_keys_together() {
        let attrs: Vec<Attribute> = vec![
            parse_quote!(#[integration(name = "a", name = "b")]),
            parse_quote!(#[integration(aggregate = "x")]),
        ];
        let (parsed, errors) = parse(&attrs);
        assert_eq!(parsed.name.map(|s| s.value).as_deref(), Some("a"));
        assert_eq!(
            errors,
            [
                "duplicate `integration` attribute `name`",
                "unknown `integration` attribute `aggregate`, expected one of `name`, `version`, `crate`"
            ]
        );
    }
}
