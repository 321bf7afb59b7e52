//! The annotated function as the macro understands it: which argument is the
//! parameters, which is the context, what it returns. The original item is kept so
//! spans point at what the user wrote.

use syn::{FnArg, ItemFn, ReturnType, Type};

/// How the handler takes its context.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContextKind {
    Owned,
    Borrowed,
    /// `&mut ActivityContext`: recognised as the context (so it is not mistaken for a
    /// second parameters argument) and refused by `validate`.
    Mutable,
}

/// One argument of the handler, in declaration order.
pub(crate) enum Argument {
    Params(Box<Type>),
    /// The context, with its type as written, for errors about it.
    Context {
        kind: ContextKind,
        ty: Box<Type>,
    },
}

pub(crate) struct ActivityFn {
    pub(crate) item: ItemFn,
    pub(crate) arguments: Vec<Argument>,
}

impl ActivityFn {
    /// Classifies the arguments. Problems with them are reported by `validate`.
    pub(crate) fn from_item(item: ItemFn) -> Self {
        let arguments = item
            .sig
            .inputs
            .iter()
            .filter_map(|input| match input {
                FnArg::Receiver(_) => None,
                FnArg::Typed(typed) => Some(match context_kind(&typed.ty) {
                    Some(kind) => Argument::Context { kind, ty: typed.ty.clone() },
                    None => Argument::Params(typed.ty.clone()),
                }),
            })
            .collect();
        Self { item, arguments }
    }

    pub(crate) fn params_type(&self) -> Option<&Type> {
        self.arguments.iter().find_map(|a| match a {
            Argument::Params(ty) => Some(&**ty),
            Argument::Context { .. } => None,
        })
    }

    pub(crate) fn return_type(&self) -> Option<&Type> {
        match &self.item.sig.output {
            ReturnType::Default => None,
            ReturnType::Type(_, ty) => Some(ty),
        }
    }

    /// The doc comment, lines joined, for the activity's description.
    pub(crate) fn description(&self) -> Option<String> {
        description(&self.item.attrs)
    }
}

/// `ActivityContext`, `&ActivityContext` or `&mut ActivityContext`, recognised by the
/// type's last segment.
fn context_kind(ty: &Type) -> Option<ContextKind> {
    match ty {
        Type::Reference(reference) => is_context(&reference.elem).then_some(match reference.mutability {
            Some(_) => ContextKind::Mutable,
            None => ContextKind::Borrowed,
        }),
        other => is_context(other).then_some(ContextKind::Owned),
    }
}

fn is_context(ty: &Type) -> bool {
    matches!(ty, Type::Path(path) if path.qself.is_none()
        && path.path.segments.last().is_some_and(|s| s.ident == "ActivityContext" && s.arguments.is_empty()))
}

/// Whether the return type is spelled `Result<..>` (used with `output = ...`).
pub(crate) fn result_ok_type(ty: &Type) -> Option<&Type> {
    result_arguments(ty)?.next()
}

/// The type arguments of a return type spelled `Result<..>` (any path ending so).
fn result_arguments(ty: &Type) -> Option<impl Iterator<Item = &Type>> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else { return None };
    Some(args.args.iter().filter_map(|arg| match arg {
        syn::GenericArgument::Type(ty) => Some(ty),
        _ => None,
    }))
}

/// Whether the declared error type is one that has no `Into<ActivityError>` (no blanket
/// conversion can cover it without overlapping the one for `std::error::Error` types)
/// but converts into `Box<dyn Error + Send + Sync>`: `anyhow::Error` (also as
/// `anyhow::Result<T>`) and `Box<dyn Error + Send + Sync>` itself.
pub(crate) fn returns_boxable_error(ty: &Type) -> bool {
    let Some(mut arguments) = result_arguments(ty) else { return false };
    let is_anyhow_result =
        matches!(ty, Type::Path(p) if p.path.segments.len() == 2 && p.path.segments[0].ident == "anyhow");
    match (arguments.nth(1), is_anyhow_result) {
        (Some(error), _) => is_anyhow_error(error) || is_boxed_dyn_error(error),
        (None, anyhow_result) => anyhow_result,
    }
}

fn is_anyhow_error(ty: &Type) -> bool {
    let Type::Path(path) = ty else { return false };
    let names: Vec<String> = path.path.segments.iter().map(|s| s.ident.to_string()).collect();
    names.ends_with(&["anyhow".to_owned(), "Error".to_owned()])
}

fn is_boxed_dyn_error(ty: &Type) -> bool {
    let Type::Path(path) = ty else { return false };
    let Some(last) = path.path.segments.last() else { return false };
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else { return false };
    last.ident == "Box"
        && matches!(args.args.first(), Some(syn::GenericArgument::Type(Type::TraitObject(object)))
            if object.bounds.iter().any(|bound| matches!(bound, syn::TypeParamBound::Trait(t)
                if t.path.segments.last().is_some_and(|s| s.ident == "Error"))))
}

pub(crate) fn description(attrs: &[syn::Attribute]) -> Option<String> {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(nv) => match &nv.value {
                syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) => Some(s.value().trim().to_owned()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    let text = lines.join("\n").trim().to_owned();
    (!text.is_empty()).then_some(text)
}
