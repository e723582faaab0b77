//! `#[upcaster(event = "...", from = N, ...)]` on a function: parse, check, expand; on errors,
//! the function unchanged beside them.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::spanned::Spanned;
use syn::{ExprArray, FnArg, Item, ItemFn, LitInt, LitStr, ReturnType};

use crate::attr::{Attr, Sp};
use crate::ctxt::Ctxt;
use crate::{expand_upcaster, naming};

const UPCASTER: &str = "upcaster";
const EVENT: &str = "event";
const FROM: &str = "from";
const TO: &str = "to";
const RENAME: &str = "rename";
const PRODUCES: &str = "produces";
const CRATE: &str = "crate";
const KEYS: &str = "`event`, `from`, `to`, `rename`, `produces`, `crate`";

/// A validated `#[upcaster]` function.
pub struct RawUpcaster<'a> {
    pub function: &'a ItemFn,
    pub event_type: String,
    pub from: u32,
    /// Every (type, version) it may produce; the first is where a bare payload goes.
    pub produces: Vec<(String, u32)>,
    /// The path of the runtime crate (`::eventcore` unless renamed with `crate = "..."`).
    pub krate: syn::Path,
}

pub fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let function = match syn::parse2::<Item>(input.clone()) {
        Ok(Item::Fn(function)) => function,
        Ok(other) => {
            let error = syn::Error::new_spanned(
                &other,
                "`#[upcaster]` goes on a function `fn(serde_json::Value) -> Result<_, UpcastError>`",
            )
            .into_compile_error();
            return quote!(#error #other);
        }
        Err(error) => {
            let error = error.into_compile_error();
            return quote!(#error #input);
        }
    };
    let cx = Ctxt::new();
    let ir = parse(&cx, args, &function);
    check_signature(&cx, &function);
    match (cx.check(), ir) {
        (Ok(()), Some(ir)) => expand_upcaster::raw(&ir),
        (Err(errors), _) => {
            let errors = errors.into_compile_error();
            quote!(#errors #function)
        }
        (Ok(()), None) => quote!(#function),
    }
}

fn parse<'a>(cx: &Ctxt, args: TokenStream, function: &'a ItemFn) -> Option<RawUpcaster<'a>> {
    let mut event = Attr::none(cx, UPCASTER, EVENT);
    let mut from = Attr::none(cx, UPCASTER, FROM);
    let mut to = Attr::none(cx, UPCASTER, TO);
    let mut rename = Attr::none(cx, UPCASTER, RENAME);
    let mut produces = Attr::none(cx, UPCASTER, PRODUCES);
    let mut krate = Attr::none(cx, UPCASTER, CRATE);
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident(EVENT) {
            let lit: LitStr = meta.value()?.parse()?;
            event.set(&meta, lit.value(), lit.span());
        } else if meta.path.is_ident(FROM) {
            let lit: LitInt = meta.value()?.parse()?;
            from.set(&meta, lit.base10_parse::<u32>()?, lit.span());
        } else if meta.path.is_ident(TO) {
            let lit: LitInt = meta.value()?.parse()?;
            to.set(&meta, lit.base10_parse::<u32>()?, lit.span());
        } else if meta.path.is_ident(RENAME) {
            let lit: LitStr = meta.value()?.parse()?;
            rename.set(&meta, lit.value(), lit.span());
        } else if meta.path.is_ident(PRODUCES) {
            let array: ExprArray = meta.value()?.parse()?;
            let span = array.span();
            produces.set(&meta, array, span);
        } else if meta.path.is_ident(CRATE) {
            let span = meta.path.span();
            let path = crate::attr::crate_path(&meta)?;
            krate.set(&meta, path, span);
        } else {
            return Err(meta.error(format!(
                "unknown `upcaster` attribute `{}`, expected one of {KEYS}",
                quote::ToTokens::to_token_stream(&meta.path)
                    .to_string()
                    .replace(' ', "")
            )));
        }
        Ok(())
    });
    if let Err(error) = syn::parse::Parser::parse2(parser, args) {
        cx.syn_error(error);
        return None;
    }
    let (event, from, to, rename, produces) =
        (event.get(), from.get(), to.get(), rename.get(), produces.get());
    let Some(event) = event else {
        cx.error_at(
            Span::call_site(),
            "`#[upcaster]` needs `event = \"...\"`, the stored event type it reads",
        );
        return None;
    };
    if let Some(why) = naming::invalid_name("event name", &event.value) {
        cx.error_at(event.span, why);
    }
    let Some(from) = from else {
        cx.error_at(
            Span::call_site(),
            "`#[upcaster]` needs `from = N`, the stored version it reads",
        );
        return None;
    };
    if from.value == 0 {
        cx.error_at(from.span, "event versions start at 1");
    }
    let produces = match produces {
        Some(list) => {
            for conflicting in [to.as_ref().map(|s| s.span), rename.as_ref().map(|s| s.span)]
                .into_iter()
                .flatten()
            {
                cx.error_at(
                    conflicting,
                    "`produces` lists every output already; drop `to` and `rename`",
                );
            }
            produced_list(cx, &list)
        }
        None => vec![single_target(cx, &event, &from, to.as_ref(), rename.as_ref())],
    };
    Some(RawUpcaster {
        function,
        event_type: event.value,
        from: from.value,
        produces,
        krate: krate
            .get()
            .map_or_else(|| syn::parse_quote!(::eventcore), |sp| sp.value),
    })
}

/// The one output of an upcaster without `produces`: `rename` (or the same type) at `to` (or `from + 1`).
fn single_target(
    cx: &Ctxt,
    event: &Sp<String>,
    from: &Sp<u32>,
    to: Option<&Sp<u32>>,
    rename: Option<&Sp<String>>,
) -> (String, u32) {
    if let Some(rename) = rename {
        if let Some(why) = naming::invalid_name("event name", &rename.value) {
            cx.error_at(rename.span, why);
        }
    }
    let event_type = rename.map_or_else(|| event.value.clone(), |r| r.value.clone());
    let version = match to {
        Some(to) if to.value == 0 => {
            cx.error_at(to.span, "event versions start at 1");
            1
        }
        Some(to) if to.value <= from.value && event_type == event.value => {
            cx.error_at(
                to.span,
                format!(
                    "`to = {}` must be greater than `from = {}`: an upcaster moves an event forward",
                    to.value, from.value
                ),
            );
            to.value
        }
        Some(to) => to.value,
        None => from.value.saturating_add(1),
    };
    (event_type, version)
}

/// `produces = ["account.withdrawn@1", "account.deposited@2"]`.
fn produced_list(cx: &Ctxt, list: &Sp<ExprArray>) -> Vec<(String, u32)> {
    if list.value.elems.is_empty() {
        // An upcaster that always drops the event: nothing to declare.
        return Vec::new();
    }
    let mut produced = Vec::new();
    for element in &list.value.elems {
        let syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(lit),
            ..
        }) = element
        else {
            cx.error_spanned_by(
                element,
                "each `produces` entry is a string `\"event.type@version\"`",
            );
            continue;
        };
        let text = lit.value();
        let parsed = text
            .rsplit_once('@')
            .and_then(|(name, version)| Some((name.to_owned(), version.parse::<u32>().ok()?)));
        match parsed {
            Some((name, version)) if version > 0 => {
                if let Some(why) = naming::invalid_name("event name", &name) {
                    cx.error_spanned_by(lit, why);
                }
                produced.push((name, version));
            }
            _ => cx.error_spanned_by(
                lit,
                format!("`{text}` is not `\"event.type@version\"` with a version of 1 or more"),
            ),
        }
    }
    produced
}

/// The function must take the payload and return a `Result`.
fn check_signature(cx: &Ctxt, function: &ItemFn) {
    let sig = &function.sig;
    if let Some(asyncness) = &sig.asyncness {
        cx.error_spanned_by(asyncness, "an `#[upcaster]` function cannot be `async`");
    }
    if !sig.generics.params.is_empty() {
        cx.error_spanned_by(&sig.generics, "an `#[upcaster]` function cannot be generic");
    }
    match sig.inputs.len() {
        1 if !matches!(sig.inputs[0], FnArg::Receiver(_)) => {}
        n => {
            let message = "an `#[upcaster]` function takes one argument, the stored payload: `payload: serde_json::Value`";
            if n == 0 {
                cx.error_at(sig.paren_token.span.join(), message);
            } else {
                cx.error_spanned_by(&sig.inputs, message);
            }
        }
    }
    if let ReturnType::Default = sig.output {
        cx.error_spanned_by(
            &sig.ident,
            "an `#[upcaster]` function returns `Result<serde_json::Value, UpcastError>` (or `Result<Vec<serde_json::Value>, _>`, `Result<Vec<Upcasted>, _>`)",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    type Parsed = Option<(String, u32, Vec<(String, u32)>)>;

    fn parsed(args: TokenStream) -> (Parsed, Vec<String>) {
        let function: ItemFn = parse_quote!(
            fn up(payload: Value) -> Result<Value, UpcastError> {
                Ok(payload)
            }
        );
        let cx = Ctxt::new();
        let ir = parse(&cx, args, &function).map(|ir| (ir.event_type, ir.from, ir.produces));
        let errors = match cx.check() {
            Ok(()) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        };
        (ir, errors)
    }

    #[test]
    fn a_bare_step_goes_to_the_next_version_of_the_same_type() {
        let (ir, errors) = parsed(quote!(event = "account.deposited", from = 1));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            ir,
            Some((
                "account.deposited".into(),
                1,
                vec![("account.deposited".into(), 2)]
            ))
        );
    }

    #[test]
    fn rename_and_to_name_the_single_output() {
        let (ir, _) = parsed(quote!(
            event = "account.credited",
            from = 1,
            rename = "account.deposited",
            to = 1
        ));
        assert_eq!(ir.map(|ir| ir.2), Some(vec![("account.deposited".into(), 1)]));
    }

    #[test]
    fn produces_lists_every_output_and_may_be_empty() {
        let (ir, errors) = parsed(quote!(event = "a.b", from = 3, produces = ["a.c@1", "a.d@2"]));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            ir.map(|ir| ir.2),
            Some(vec![("a.c".into(), 1), ("a.d".into(), 2)])
        );
        let (ir, _) = parsed(quote!(event = "a.b", from = 3, produces = []));
        assert_eq!(ir.map(|ir| ir.2), Some(vec![]));
    }

    #[test]
    fn independent_errors_are_reported_together() {
        let (_, errors) = parsed(quote!(event = "A", from = 0, to = 0));
        assert_eq!(
            errors,
            [
                "event name `A` has upper case letters: names are lower case, like `a`",
                "event versions start at 1",
                "event versions start at 1",
            ]
        );
    }
}
