//! `#[activity]` on an `async fn`: the function becomes a unit value of a type of the
//! same name, with the typed body kept as its `call` method and an `Activity` impl
//! that decodes the JSON parameters and converts what the body returns.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{ItemFn, parse_quote};

use crate::ast::{self, ActivityFn, Argument, ContextKind};
use crate::attr::{Options, RawOptions, runtime_path};
use crate::errors::Errors;
use crate::naming::check_name;
use crate::validate;

const OPTIONS: &[&str] = &["name", "output", "crate"];

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let options = match syn::parse2::<RawOptions>(args) {
        Ok(raw) => Options::from_raw(raw, OPTIONS, &mut errors),
        Err(error) => {
            errors.push(error);
            Options::default()
        }
    };
    let item: ItemFn = match syn::parse2(item.clone()) {
        Ok(item) => item,
        Err(_) => {
            errors
                .push_spanned(&item, "#[activity] goes on an `async fn`; for a struct or enum use #[derive(Activity)]");
            let errors = errors.into_compile_errors();
            return quote!(#item #errors);
        }
    };
    let activity = ActivityFn::from_item(item);
    validate::check(&activity, &mut errors);
    validate::no_mutable_context(&activity, &mut errors);
    let name = match &options.name {
        Some((name, _)) => name.clone(),
        None => default_name(&activity, &mut errors),
    };
    if !errors.is_empty() {
        // Keep the user's function so the rest of their crate still compiles and one
        // mistake does not turn into a cascade.
        let item = &activity.item;
        let errors = errors.into_compile_errors();
        return quote!(#item #errors);
    }
    generate(&activity, &options, &name)
}

fn default_name(activity: &ActivityFn, errors: &mut Errors) -> String {
    let ident = &activity.item.sig.ident;
    let name = ident.to_string().trim_start_matches("r#").to_owned();
    if let Err(message) = check_name(&name) {
        errors.push_spanned(ident, format!("{message}; set a valid one with `#[activity(name = \"...\")]`"));
    }
    name
}

fn generate(activity: &ActivityFn, options: &Options, name: &str) -> TokenStream {
    let rt = runtime_path(&options.krate);
    let ItemFn { attrs, vis, sig, block } = &activity.item;
    let ident = &sig.ident;
    let doc_attrs: Vec<_> = attrs.iter().filter(|a| a.path().is_ident("doc") || a.path().is_ident("cfg")).collect();
    let identity = super::identity_methods(name, activity.description());

    let mut call_sig = sig.clone();
    call_sig.ident = format_ident!("call", span = ident.span());
    call_sig.inputs.insert(0, parse_quote!(&self));

    // Spanned at the user's type, so a type that cannot be decoded is reported there.
    let decode = match activity.params_type() {
        Some(ty) => {
            quote_spanned!(ty.span()=> let __kf_params = <#ty as #rt::DecodeParams>::decode(__kf_params, &__kf_ctx)?;)
        }
        None => quote!(let _ = __kf_params;),
    };
    let call_args = activity.arguments.iter().map(|argument| match argument {
        Argument::Params(_) => quote!(__kf_params),
        Argument::Context(ContextKind::Owned) => quote!(::core::clone::Clone::clone(&__kf_ctx)),
        Argument::Context(ContextKind::Borrowed) => quote!(&__kf_ctx),
    });
    let convert = conversion(activity, options, &rt);
    // Spanned at the function's name, so a future that is not `Send` is reported there.
    // The `Send` bound is checked against this opaque type: spanned at the function's
    // name, a future that is not `Send` is reported there.
    let returned = quote_spanned! {ident.span()=>
        impl ::core::future::Future<
            Output = ::core::result::Result<#rt::ActivityResult, #rt::ActivityError>,
        > + ::core::marker::Send
    };
    let body = quote_spanned! {ident.span()=>
        async move {
            #decode
            let __kf_returned = self.call(#(#call_args),*).await;
            #convert
        }
    };

    quote! {
        #(#doc_attrs)*
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone, Copy, Default)]
        #vis struct #ident;

        impl #ident {
            #(#attrs)*
            #vis #call_sig #block
        }

        impl #rt::Activity for #ident {
            #identity

            fn run(
                &self,
                __kf_params: #rt::Value,
                __kf_ctx: #rt::ActivityContext,
            ) -> #returned {
                #body
            }
        }
    }
}

/// How the body's return value becomes a result. Each conversion is spanned at the
/// declared return type, so a wrong one is reported on what the user wrote.
fn conversion(activity: &ActivityFn, options: &Options, rt: &TokenStream) -> TokenStream {
    let declared = activity.return_type();
    let span = declared.map_or_else(|| activity.item.sig.ident.span(), |ty| ty.span());
    match &options.output {
        None => quote_spanned!(span=> #rt::IntoActivityOutcome::into_activity_outcome(__kf_returned)),
        Some((output, _)) => match declared.and_then(ast::result_ok_type) {
            Some(ok) => {
                let value = quote_spanned!(ok.span()=> #rt::ActivityResult::value(#output, value));
                quote! {
                    match __kf_returned {
                        ::core::result::Result::Ok(value) => ::core::result::Result::Ok(#value),
                        ::core::result::Result::Err(error) => ::core::result::Result::Err(::core::convert::Into::<#rt::ActivityError>::into(error)),
                    }
                }
            }
            None => {
                quote_spanned!(span=> ::core::result::Result::Ok(#rt::ActivityResult::value(#output, __kf_returned)))
            }
        },
    }
}
