//! The rules an `#[activity]` function must follow, one function per rule. Each
//! mistake is reported at the narrowest span, and all of them together.

use syn::FnArg;

use crate::ast::{ActivityFn, Argument, ContextKind};
use crate::errors::Errors;

pub(crate) fn check(activity: &ActivityFn, errors: &mut Errors) {
    must_be_async(activity, errors);
    no_receiver(activity, errors);
    no_generics(activity, errors);
    at_most_one_of_each_argument(activity, errors);
    no_mutable_context(activity, errors);
}

fn must_be_async(activity: &ActivityFn, errors: &mut Errors) {
    let sig = &activity.item.sig;
    if sig.asyncness.is_none() {
        errors.push_spanned(sig.fn_token, "#[activity] functions must be `async fn`");
    }
}

fn no_receiver(activity: &ActivityFn, errors: &mut Errors) {
    if let Some(FnArg::Receiver(receiver)) = activity.item.sig.inputs.first() {
        errors.push_spanned(receiver, "#[activity] functions cannot take `self`; use `#[derive(Activity)]` on a type with an `Execute` impl for configured activities");
    }
}

fn no_generics(activity: &ActivityFn, errors: &mut Errors) {
    let generics = &activity.item.sig.generics;
    if !generics.params.is_empty() || generics.where_clause.is_some() {
        errors.push_spanned(
            generics,
            "#[activity] functions cannot be generic: the registry needs one concrete parameters type",
        );
    }
}

fn at_most_one_of_each_argument(activity: &ActivityFn, errors: &mut Errors) {
    let typed = activity.item.sig.inputs.iter().filter(|a| matches!(a, FnArg::Typed(_)));
    let mut params_seen = false;
    let mut context_seen = false;
    for (input, argument) in typed.zip(&activity.arguments) {
        match argument {
            Argument::Params(_) if params_seen => errors.push_spanned(
                input,
                "an activity takes at most one parameters argument (plus an optional `ActivityContext` or `&ActivityContext`); put the fields in one struct",
            ),
            Argument::Params(_) => params_seen = true,
            Argument::Context { .. } if context_seen => {
                errors.push_spanned(input, "the context is already an argument; an activity takes it at most once")
            }
            Argument::Context { .. } => context_seen = true,
        }
    }
}

/// The context is shared by the worker and the handler, so it is never lent mutably.
fn no_mutable_context(activity: &ActivityFn, errors: &mut Errors) {
    for argument in &activity.arguments {
        if let Argument::Context { kind: ContextKind::Mutable, ty } = argument {
            errors.push_spanned(ty, "take the context as `ActivityContext` or `&ActivityContext`, not `&mut`");
        }
    }
}
