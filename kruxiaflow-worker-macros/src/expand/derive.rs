//! `#[derive(Activity)]`: implements `Activity` by decoding the parameters into the
//! type's `Execute::Params` and calling `Execute::execute`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{DeriveInput, parse_quote};

use crate::ast::description;
use crate::attr::{from_attributes, runtime_path};
use crate::errors::Errors;
use crate::naming::{check_name, snake_case};

const OPTIONS: &[&str] = &["name", "crate", "max_concurrency", "local_retries"];

pub(crate) fn expand(input: TokenStream) -> TokenStream {
    let input: DeriveInput = match syn::parse2(input) {
        Ok(input) => input,
        Err(error) => return error.to_compile_error(),
    };
    let mut errors = Errors::default();
    let options = from_attributes(&input.attrs, OPTIONS, &mut errors);
    let ident = &input.ident;
    let name = match &options.name {
        Some(name) => name.clone(),
        None => {
            let name = snake_case(&ident.to_string());
            if let Err(message) = check_name(&name) {
                errors.push_spanned(ident, format!("{message}; set a valid one with `#[activity(name = \"...\")]`"));
            }
            name
        }
    };
    let rt = runtime_path(&options.krate);
    let identity = super::identity_methods(&name, description(&input.attrs), &options);
    let (impl_generics, type_generics, where_clause) = input.generics.split_for_impl();
    let mut where_clause = where_clause.cloned().unwrap_or_else(|| parse_quote!(where));
    where_clause.predicates.push(parse_quote!(Self: #rt::Execute));
    // The impl is emitted even when an option is wrong, so code that registers the
    // type does not drown the real error in follow-on ones.
    let errors = errors.into_compile_errors();
    quote! {
        #errors
        const _: () = {
            #[automatically_derived]
            impl #impl_generics #rt::Activity for #ident #type_generics #where_clause {
                #identity

                fn run(
                    &self,
                    params: #rt::Value,
                    ctx: #rt::ActivityContext,
                ) -> impl ::core::future::Future<
                    Output = ::core::result::Result<#rt::ActivityResult, #rt::ActivityError>,
                > + ::core::marker::Send {
                    #rt::run_execute(self, params, ctx)
                }
            }
        };
    }
}
