//! Code generation, one file per macro.

pub(crate) mod activity_fn;
pub(crate) mod derive;

use proc_macro2::TokenStream;
use quote::quote;

use crate::attr::Options;

/// The `name`, `description` and limit methods of a generated `Activity` impl.
pub(crate) fn identity_methods(name: &str, description: Option<String>, options: &Options) -> TokenStream {
    let description = match description {
        Some(text) => quote!(::core::option::Option::Some(#text)),
        None => quote!(::core::option::Option::None),
    };
    let max_concurrency = options.max_concurrency.map(|n| {
        let n = n as usize;
        quote! {
            fn max_concurrency(&self) -> ::core::option::Option<usize> {
                ::core::option::Option::Some(#n)
            }
        }
    });
    let local_retries = options.local_retries.map(|n| {
        quote! {
            fn local_retries(&self) -> u32 {
                #n
            }
        }
    });
    quote! {
        fn name(&self) -> &str {
            #name
        }

        fn description(&self) -> ::core::option::Option<&str> {
            #description
        }

        #max_concurrency
        #local_retries
    }
}
