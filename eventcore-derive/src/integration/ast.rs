//! The IR of `#[derive(IntegrationEvent)]`: built from `syn` input, borrowing it for spans.

use syn::{Data, DeriveInput, Ident};

use super::attr::{self, IntegrationAttrs};
use crate::attr::Sp;
use crate::ctxt::Ctxt;
use crate::naming;

/// A struct or enum deriving `IntegrationEvent`.
pub struct IntegrationInput<'a> {
    pub ident: &'a Ident,
    /// The path of the runtime crate (`::eventcore` unless renamed with `crate = "..."`).
    pub krate: syn::Path,
    /// The declared name; `None` when missing (an error the check reports).
    pub name: Option<Sp<String>>,
    pub version: u32,
    /// Whether an `#[integration(...)]` attribute is present at all.
    pub attribute_present: bool,
}

impl<'a> IntegrationInput<'a> {
    /// Builds the IR, reporting every problem to `cx`. `None` when nothing sensible can be generated.
    pub fn from_ast(cx: &Ctxt, input: &'a DeriveInput) -> Option<Self> {
        let IntegrationAttrs {
            name,
            version,
            krate,
            present,
        } = attr::integration_attrs(cx, &input.attrs);
        if let Data::Union(data) = &input.data {
            cx.error_spanned_by(
                data.union_token,
                "`IntegrationEvent` cannot be derived for unions: use a struct or an enum that serde can encode",
            );
            return None;
        }
        if !input.generics.params.is_empty() {
            cx.error_spanned_by(
                &input.generics,
                "`IntegrationEvent` cannot be derived for generic types: an integration event has one fixed name and schema",
            );
            return None;
        }
        if let Some(name) = &name {
            if let Some(why) = naming::invalid_name("integration event name", &name.value) {
                cx.error_at(name.span, why);
            }
        }
        let version = match version {
            Some(Sp { value: 0, span }) => {
                cx.error_at(span, "integration event versions start at 1");
                1
            }
            Some(sp) => sp.value,
            None => 1,
        };
        Some(IntegrationInput {
            ident: &input.ident,
            krate: krate.unwrap_or_else(|| syn::parse_quote!(::eventcore)),
            name,
            version,
            attribute_present: present,
        })
    }

    /// The name to generate: the declared one, or (only beside a reported error) the snake_case type name.
    pub fn name_or_fallback(&self) -> String {
        self.name.as_ref().map_or_else(
            || naming::snake_case(&self.ident.to_string()),
            |sp| sp.value.clone(),
        )
    }
}
