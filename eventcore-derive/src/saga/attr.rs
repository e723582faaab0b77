//! Parses `#[saga(...)]` and the handler markers into typed values that keep their spans.

use proc_macro2::{Span, TokenStream};
use syn::{Attribute, LitStr, Member, Type};

use crate::attr::{crate_path, int_literal, path_text, Attr, Sp, CRATE, KEY, NAME, VERSION};
use crate::ctxt::Ctxt;

pub const SAGA: &str = "saga";
pub const COMMANDS: &str = "commands";
pub const START: &str = "start";
pub const HANDLE: &str = "handle";
pub const END: &str = "end";
pub const DEADLINE: &str = "deadline";

const SAGA_KEYS: &str = "`commands`, `name`, `version`, `crate`";

/// The keys of `#[saga(...)]`.
pub struct SagaAttrs {
    pub commands: Option<Type>,
    pub name: Option<Sp<String>>,
    pub version: Option<Sp<u32>>,
    pub krate: Option<syn::Path>,
}

/// Parses the arguments of `#[saga(...)]`, reporting problems to `cx`.
pub fn saga_attrs(cx: &Ctxt, args: TokenStream) -> SagaAttrs {
    let mut commands = Attr::none(cx, SAGA, COMMANDS);
    let mut name = Attr::none(cx, SAGA, NAME);
    let mut version = Attr::none(cx, SAGA, VERSION);
    let mut krate = Attr::none(cx, SAGA, CRATE);

    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident(COMMANDS) {
            let ty: Type = meta.value()?.parse()?;
            let span = syn::spanned::Spanned::span(&ty);
            commands.set(&meta, ty, span);
        } else if meta.path.is_ident(NAME) {
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
                "unknown `saga` attribute `{}`, expected one of {SAGA_KEYS}",
                path_text(&meta.path)
            )));
        }
        Ok(())
    });
    if let Err(err) = syn::parse::Parser::parse2(parser, args) {
        cx.syn_error(err);
    }

    SagaAttrs {
        commands: commands.get().map(|sp| sp.value),
        name: name.get(),
        version: version.get(),
        krate: krate.get().map(|sp| sp.value),
    }
}

/// Parses `key = field` of an event-handler marker (`start`, `handle`, `end`); `None` (reported)
/// when missing.
pub fn key_attr(cx: &Ctxt, attr: &Attribute, marker: &'static str) -> Option<Member> {
    let missing = || {
        cx.error_spanned_by(
            attr,
            format!("`#[{marker}]` needs the payload field that finds the instance, like `#[{marker}(key = order_id)]`"),
        );
    };
    if matches!(attr.meta, syn::Meta::Path(_)) {
        missing();
        return None;
    }
    let mut key = Attr::none(cx, marker, KEY);
    let parsed = attr.parse_nested_meta(|meta| {
        if meta.path.is_ident(KEY) {
            let value = meta.value()?;
            let span = value.span();
            let member: Member = value
                .parse()
                .map_err(|_| syn::Error::new(span, "expected a payload field name, like `key = order_id`"))?;
            let member_span = syn::spanned::Spanned::span(&member);
            key.set(&meta, member, member_span);
        } else {
            return Err(meta.error(format!(
                "unknown `{marker}` attribute `{}`, expected `key`",
                path_text(&meta.path)
            )));
        }
        Ok(())
    });
    if let Err(err) = parsed {
        cx.syn_error(err);
        return None;
    }
    let key = key.get().map(|sp| sp.value);
    if key.is_none() {
        missing();
    }
    key
}
