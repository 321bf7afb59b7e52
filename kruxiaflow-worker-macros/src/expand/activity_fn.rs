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

const OPTIONS: &[&str] = &["name", "output", "crate", "max_concurrency", "local_retries"];

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
    let name = match &options.name {
        Some(name) => name.clone(),
        None => default_name(&activity, &mut errors),
    };
    let rt = runtime_path(&options.krate);
    if !errors.is_empty() {
        let errors = errors.into_compile_errors();
        // A method (it takes `self`) sits in an impl, where no type can be declared:
        // keep it as written so the impl still compiles.
        if activity.item.sig.receiver().is_some() {
            let item = &activity.item;
            return quote!(#item #errors);
        }
        // Otherwise the type and an `Activity` impl are still emitted (as thiserror's
        // fallback does), so code that registers the activity compiles and the one
        // mistake is the only error.
        let fallback = fallback(&activity, &options, &name, &rt);
        return quote!(#fallback #errors);
    }
    let unit_type = unit_type(&activity);
    let typed_body = typed_body(&activity);
    let activity_impl = activity_impl(&activity, &options, &name, &rt);
    quote! {
        #unit_type
        #typed_body
        #activity_impl
    }
}

fn default_name(activity: &ActivityFn, errors: &mut Errors) -> String {
    let ident = &activity.item.sig.ident;
    let name = ident.to_string().trim_start_matches("r#").to_owned();
    if let Err(message) = check_name(&name) {
        errors.push_spanned(ident, format!("{message}; set a valid one with `#[activity(name = \"...\")]`"));
    }
    name
}

/// The unit type that stands for the function, named like it.
fn unit_type(activity: &ActivityFn) -> TokenStream {
    let ItemFn { attrs, vis, sig, .. } = &activity.item;
    let ident = &sig.ident;
    // The type carries the function's doc comment and `cfg`s. In practice no `cfg`
    // reaches here: rustc evaluates every `#[cfg]` of an item before expanding any
    // attribute macro on it, wherever it is written, removing the item when false and
    // the attribute when true. Copying them keeps the type, `call` and the impls under
    // one condition should that ever change.
    let doc_and_cfg_attrs = attrs.iter().filter(|a| a.path().is_ident("doc") || a.path().is_ident("cfg"));
    quote! {
        #(#doc_and_cfg_attrs)*
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone, Copy, Default)]
        #vis struct #ident;
    }
}

/// The user's function, kept as the type's `call` method.
fn typed_body(activity: &ActivityFn) -> TokenStream {
    let ItemFn { attrs, vis, sig, block } = &activity.item;
    let ident = &sig.ident;
    let mut call_sig = sig.clone();
    call_sig.ident = format_ident!("call", span = ident.span());
    call_sig.inputs.insert(0, parse_quote!(&self));
    // An activity that is defined but never registered is not dead code worth a
    // warning about a method the user never wrote.
    quote! {
        impl #ident {
            #(#attrs)*
            #[allow(dead_code)]
            #vis #call_sig #block
        }
    }
}

/// `Activity` for the unit type: decode the JSON parameters, call the typed body,
/// convert what it returned.
fn activity_impl(activity: &ActivityFn, options: &Options, name: &str, rt: &TokenStream) -> TokenStream {
    let ident = &activity.item.sig.ident;
    let identity = super::identity_methods(name, activity.description(), options);
    // Spanned at the user's type, so a type that cannot be decoded is reported there.
    let decode = match activity.params_type() {
        Some(ty) => {
            quote_spanned!(ty.span()=> let __kf_params = <#ty as #rt::DecodeParams>::decode(__kf_params, &__kf_ctx)?;)
        }
        None => quote!(let _ = __kf_params;),
    };
    let call_args = activity.arguments.iter().map(|argument| match argument {
        Argument::Params(_) => quote!(__kf_params),
        Argument::Context { kind: ContextKind::Owned, .. } => quote!(::core::clone::Clone::clone(&__kf_ctx)),
        // `Mutable` is refused by `validate` before any code is generated.
        Argument::Context { kind: ContextKind::Borrowed | ContextKind::Mutable, .. } => quote!(&__kf_ctx),
    });
    let convert = conversion(activity, options, rt);
    let returned = future_type(ident, rt);
    let body = quote_spanned! {ident.span()=>
        async move {
            #decode
            let __kf_returned = self.call(#(#call_args),*).await;
            #convert
        }
    };
    quote! {
        #[automatically_derived]
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

/// The future `run` returns. The `Send` bound is checked against this opaque type:
/// spanned at the function's name, a future that is not `Send` is reported there.
fn future_type(ident: &syn::Ident, rt: &TokenStream) -> TokenStream {
    quote_spanned! {ident.span()=>
        impl ::core::future::Future<
            Output = ::core::result::Result<#rt::ActivityResult, #rt::ActivityError>,
        > + ::core::marker::Send
    }
}

/// What is emitted for a function with mistakes: the unit type and an `Activity` impl
/// that is never run (the crate does not compile), without the user's body.
fn fallback(activity: &ActivityFn, options: &Options, name: &str, rt: &TokenStream) -> TokenStream {
    let ident = &activity.item.sig.ident;
    let unit_type = unit_type(activity);
    let identity = super::identity_methods(name, activity.description(), options);
    let returned = future_type(ident, rt);
    quote! {
        #unit_type

        #[automatically_derived]
        impl #rt::Activity for #ident {
            #identity

            fn run(&self, _: #rt::Value, _: #rt::ActivityContext) -> #returned {
                ::core::future::pending()
            }
        }
    }
}

/// How the body's return value becomes a result. Each conversion is spanned at the
/// declared return type, so a wrong one is reported on what the user wrote.
fn conversion(activity: &ActivityFn, options: &Options, rt: &TokenStream) -> TokenStream {
    let declared = activity.return_type();
    let span = declared.map_or_else(|| activity.item.sig.ident.span(), |ty| ty.span());
    let boxable = declared.is_some_and(ast::returns_boxable_error);
    let into_error = match boxable {
        true => quote_spanned!(span=> #rt::boxed_error(::core::convert::Into::into(error))),
        false => quote_spanned!(span=> ::core::convert::Into::<#rt::ActivityError>::into(error)),
    };
    match &options.output {
        None if boxable => quote_spanned! {span=>
            match __kf_returned {
                ::core::result::Result::Ok(result) => #rt::IntoActivityOutcome::into_activity_outcome(result),
                ::core::result::Result::Err(error) => ::core::result::Result::Err(#into_error),
            }
        },
        None => quote_spanned!(span=> #rt::IntoActivityOutcome::into_activity_outcome(__kf_returned)),
        Some(output) => match declared.and_then(ast::result_ok_type) {
            Some(ok) => {
                let value = quote_spanned!(ok.span()=> #rt::ActivityResult::value(#output, value));
                quote! {
                    match __kf_returned {
                        ::core::result::Result::Ok(value) => ::core::result::Result::Ok(#value),
                        ::core::result::Result::Err(error) => ::core::result::Result::Err(#into_error),
                    }
                }
            }
            None => {
                quote_spanned!(span=> ::core::result::Result::Ok(#rt::ActivityResult::value(#output, __kf_returned)))
            }
        },
    }
}
