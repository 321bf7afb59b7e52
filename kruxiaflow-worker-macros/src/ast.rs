//! The annotated function as the macro understands it: which argument is the
//! parameters, which is the context, what it returns. The original item is kept so
//! spans point at what the user wrote.

use syn::{FnArg, ItemFn, ReturnType, Type};

/// How the handler takes its context.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContextKind {
    Owned,
    Borrowed,
}

/// One argument of the handler, in declaration order.
pub(crate) enum Argument {
    Params(Box<Type>),
    Context(ContextKind),
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
                    Some(kind) => Argument::Context(kind),
                    None => Argument::Params(typed.ty.clone()),
                }),
            })
            .collect();
        Self { item, arguments }
    }

    pub(crate) fn params_type(&self) -> Option<&Type> {
        self.arguments.iter().find_map(|a| match a {
            Argument::Params(ty) => Some(&**ty),
            Argument::Context(_) => None,
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

/// `ActivityContext` or `&ActivityContext`, recognised by the type's last segment.
pub(crate) fn context_kind(ty: &Type) -> Option<ContextKind> {
    match ty {
        Type::Reference(reference) if reference.mutability.is_none() => {
            is_context(&reference.elem).then_some(ContextKind::Borrowed)
        }
        other => is_context(other).then_some(ContextKind::Owned),
    }
}

fn is_context(ty: &Type) -> bool {
    matches!(ty, Type::Path(path) if path.qself.is_none()
        && path.path.segments.last().is_some_and(|s| s.ident == "ActivityContext" && s.arguments.is_empty()))
}

/// Whether the return type is spelled `Result<..>` (used with `output = ...`).
pub(crate) fn result_ok_type(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else { return None };
    match args.args.first()? {
        syn::GenericArgument::Type(ok) => Some(ok),
        _ => None,
    }
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
