//! The options of `#[activity(...)]`, one small setter per option.

use syn::Token;
use syn::parse::{Parse, ParseStream};

use crate::errors::Errors;
use crate::naming::check_name;

/// The options an item may carry. Which ones are allowed depends on the macro.
#[derive(Default)]
pub(crate) struct Options {
    pub(crate) name: Option<String>,
    pub(crate) output: Option<String>,
    pub(crate) krate: Option<syn::Path>,
    /// At most this many attempts run the handler at once in one worker.
    pub(crate) max_concurrency: Option<u32>,
    /// Retryable failures run again inside the attempt, this many times at most.
    pub(crate) local_retries: Option<u32>,
}

/// Checks and stores one option's value.
type Setter = fn(&mut Options, &syn::Ident, &syn::Lit, &mut Errors);

/// `key = "value"` pairs, parsed without judging them yet.
pub(crate) struct RawOptions(Vec<(syn::Ident, syn::Lit)>);

impl Parse for RawOptions {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut pairs = Vec::new();
        while !input.is_empty() {
            let key: syn::Ident = input.call(syn::ext::IdentExt::parse_any)?;
            input.parse::<Token![=]>().map_err(|e| syn::Error::new(e.span(), format!("expected `{key} = \"...\"`")))?;
            let lookahead = input.lookahead1();
            if !lookahead.peek(syn::Lit) {
                let wanted = match key.to_string().as_str() {
                    "max_concurrency" | "local_retries" => format!("`{key}` takes a whole number, e.g. `{key} = 4`"),
                    _ => format!("`{key}` takes a string literal, e.g. `{key} = \"...\"`"),
                };
                return Err(syn::Error::new(input.span(), wanted));
            }
            pairs.push((key, input.parse()?));
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(Self(pairs))
    }
}

impl Options {
    /// Reads `raw`, accepting only the keys in `allowed`; every mistake goes to `errors`.
    pub(crate) fn from_raw(raw: RawOptions, allowed: &[&str], errors: &mut Errors) -> Self {
        let mut options = Self::default();
        for (key, value) in raw.0 {
            let name = key.to_string();
            let setter: Option<Setter> = match name.as_str() {
                "name" => Some(Self::set_name),
                "output" => Some(Self::set_output),
                "crate" => Some(Self::set_crate),
                "max_concurrency" => Some(Self::set_max_concurrency),
                "local_retries" => Some(Self::set_local_retries),
                _ => None,
            };
            let Some(setter) = setter.filter(|_| allowed.contains(&name.as_str())) else {
                let list: Vec<String> = allowed.iter().map(|k| format!("`{k}`")).collect();
                errors.push_spanned(&key, format!("unknown option `{name}`; supported options: {}", list.join(", ")));
                continue;
            };
            setter(&mut options, &key, &value, errors);
        }
        options
    }

    fn set_name(&mut self, key: &syn::Ident, value: &syn::Lit, errors: &mut Errors) {
        let Some(name) = string_literal(key, value, errors) else { return };
        if self.name.is_some() {
            return errors.push_spanned(key, "`name` set more than once");
        }
        match check_name(&name) {
            Ok(()) => self.name = Some(name),
            Err(message) => errors.push_spanned(value, message),
        }
    }

    fn set_output(&mut self, key: &syn::Ident, value: &syn::Lit, errors: &mut Errors) {
        let Some(output) = string_literal(key, value, errors) else { return };
        if self.output.is_some() {
            return errors.push_spanned(key, "`output` set more than once");
        }
        if output.trim().is_empty() {
            return errors.push_spanned(value, "`output` must name the output, e.g. `output = \"result\"`");
        }
        self.output = Some(output);
    }

    fn set_crate(&mut self, key: &syn::Ident, value: &syn::Lit, errors: &mut Errors) {
        let Some(path) = string_literal(key, value, errors) else { return };
        if self.krate.is_some() {
            return errors.push_spanned(key, "`crate` set more than once");
        }
        match syn::parse_str::<syn::Path>(&path) {
            Ok(parsed) => self.krate = Some(parsed),
            Err(_) => errors.push_spanned(
                value,
                format!("`crate` must be a path such as \"::my_facade::kruxiaflow_worker\", got {path:?}"),
            ),
        }
    }
}

impl Options {
    fn set_max_concurrency(&mut self, key: &syn::Ident, value: &syn::Lit, errors: &mut Errors) {
        match count(key, value, 1, errors) {
            Some(_) if self.max_concurrency.is_some() => {
                errors.push_spanned(key, "`max_concurrency` set more than once")
            }
            Some(n) => self.max_concurrency = Some(n),
            None => {}
        }
    }

    fn set_local_retries(&mut self, key: &syn::Ident, value: &syn::Lit, errors: &mut Errors) {
        match count(key, value, 0, errors) {
            Some(_) if self.local_retries.is_some() => errors.push_spanned(key, "`local_retries` set more than once"),
            Some(n) => self.local_retries = Some(n),
            None => {}
        }
    }
}

/// An integer literal of at least `least`, up to `u32::MAX`.
fn count(key: &syn::Ident, value: &syn::Lit, least: u32, errors: &mut Errors) -> Option<u32> {
    let syn::Lit::Int(int) = value else {
        errors.push_spanned(value, format!("`{key}` takes a whole number, e.g. `{key} = 4`"));
        return None;
    };
    match int.base10_parse::<u32>() {
        Ok(n) if n >= least => Some(n),
        _ => {
            errors.push_spanned(value, format!("`{key}` must be a whole number from {least} to {}", u32::MAX));
            None
        }
    }
}

fn string_literal(key: &syn::Ident, value: &syn::Lit, errors: &mut Errors) -> Option<String> {
    match value {
        syn::Lit::Str(s) => Some(s.value()),
        other => {
            errors.push_spanned(other, format!("`{key}` takes a string literal, e.g. `{key} = \"...\"`"));
            None
        }
    }
}

/// Options of `#[activity(...)]` helper attributes on a derive input.
pub(crate) fn from_attributes(attrs: &[syn::Attribute], allowed: &[&str], errors: &mut Errors) -> Options {
    let mut all = RawOptions(Vec::new());
    for attr in attrs.iter().filter(|a| a.path().is_ident("activity")) {
        match attr.parse_args::<RawOptions>() {
            Ok(raw) => all.0.extend(raw.0),
            Err(error) => errors.push(error),
        }
    }
    Options::from_raw(all, allowed, errors)
}

/// The path generated code uses to reach the runtime.
pub(crate) fn runtime_path(krate: &Option<syn::Path>) -> proc_macro2::TokenStream {
    match krate {
        Some(path) => quote::quote!(#path::__private),
        None => quote::quote!(::kruxiaflow_worker::__private),
    }
}
