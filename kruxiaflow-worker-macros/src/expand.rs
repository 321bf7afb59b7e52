//! Code generation, one file per macro.

pub(crate) mod activity_fn;
pub(crate) mod derive;

use proc_macro2::TokenStream;
use quote::quote;

/// The `name` and `description` methods of a generated `Activity` impl.
pub(crate) fn identity_methods(name: &str, description: Option<String>) -> TokenStream {
    let description = match description {
        Some(text) => quote!(::core::option::Option::Some(#text)),
        None => quote!(::core::option::Option::None),
    };
    quote! {
        fn name(&self) -> &str {
            #name
        }

        fn description(&self) -> ::core::option::Option<&str> {
            #description
        }
    }
}
