//! Parses `#[event_handler(...)]` into typed values that keep their spans.

use proc_macro2::{Span, TokenStream};
use syn::LitStr;

use crate::attr::{crate_path, path_text, Attr, Sp, CRATE, EVENT_HANDLER, NAME};
use crate::ctxt::Ctxt;

const EVENT_HANDLER_KEYS: &str = "`name`, `crate`";

/// The keys of `#[event_handler(...)]`.
pub struct HandlerAttrs {
    pub name: Option<Sp<String>>,
    pub krate: Option<syn::Path>,
}

/// Parses the arguments of `#[event_handler(...)]`, reporting problems to `cx`.
pub fn handler_attrs(cx: &Ctxt, args: TokenStream) -> HandlerAttrs {
    let mut name = Attr::none(cx, EVENT_HANDLER, NAME);
    let mut krate = Attr::none(cx, EVENT_HANDLER, CRATE);

    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident(NAME) {
            let lit: LitStr = meta.value()?.parse()?;
            name.set(&meta, lit.value(), lit.span());
        } else if meta.path.is_ident(CRATE) {
            let path = crate_path(&meta)?;
            krate.set(&meta, path, Span::call_site());
        } else {
            return Err(meta.error(format!(
                "unknown `event_handler` attribute `{}`, expected one of {EVENT_HANDLER_KEYS}",
                path_text(&meta.path)
            )));
        }
        Ok(())
    });
    if let Err(err) = syn::parse::Parser::parse2(parser, args) {
        cx.syn_error(err);
    }

    HandlerAttrs {
        name: name.get(),
        krate: krate.get().map(|sp| sp.value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(cx: Ctxt) -> Vec<String> {
        cx.check()
            .err()
            .map(|e| e.into_iter().map(|e| e.to_string()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn parses_name_and_crate() {
        let cx = Ctxt::new();
        let parsed = handler_attrs(&cx, quote::quote!(name = "mailer", crate = "::rt"));
        assert!(errors(cx).is_empty());
        assert_eq!(parsed.name.map(|s| s.value).as_deref(), Some("mailer"));
        assert!(parsed.krate.is_some());
    }

    #[test]
    fn unknown_and_duplicate_keys_are_reported() {
        let cx = Ctxt::new();
        let _ = handler_attrs(&cx, quote::quote!(name = "a", name = "b"));
        assert_eq!(errors(cx), ["duplicate `event_handler` attribute `name`"]);
        let cx = Ctxt::new();
        let _ = handler_attrs(&cx, quote::quote!(version = 2));
        assert_eq!(
            errors(cx),
            ["unknown `event_handler` attribute `version`, expected one of `name`, `crate`"]
        );
    }
}
