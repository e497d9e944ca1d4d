//! Interface 0.2's `request` and `response-head` resources (`wit/0.2/filter.wit`): the heads
//! a call lends its guest, read through methods while the call runs. Nothing is copied into
//! the guest but what it asks for: a filter that reads one header copies one header.
//!
//! The host owns the data; the guest gets a borrowed handle for one call, which the component
//! model invalidates when the call returns. The host side keeps a pointer to the borrowed
//! heads only while [`lend`]'s call runs (a guard clears it however the call ends), and every
//! method finds no head outside a call and traps.

use crate::types::{Headers, Request};
use std::ptr::NonNull;
use wasmtime::component::{Linker, LinkerInstance, Resource, ResourceType, WasmStr};
use wasmtime::{Store, StoreContextMut};

const TYPES: &str = "breakwater:filter/types@0.2.0";

/// The resource type of `request` (its handles carry no data: the head is the call's).
pub(crate) struct RequestHead;
/// The resource type of `response-head`.
pub(crate) struct ResponseHead;

/// The heads lent to the guest for the length of one call; empty between calls.
#[derive(Default)]
pub(crate) struct Lent {
    request: Option<NonNull<Request<'static>>>,
    response: Option<(u16, NonNull<Headers<'static>>)>,
}

// SAFETY: the pointers are to `Request` and `Headers` values, which are `Sync` (shared
// references to strings, byte slices and a header map), and are only dereferenced through
// `&Lent` while the call that lent them runs (see `lend`).
#[allow(unsafe_code)]
unsafe impl Send for Lent {}

impl Lent {
    fn request(&self) -> wasmtime::Result<&Request<'_>> {
        // SAFETY: set by `lend` from a reference that outlives the call, and cleared by its
        // guard when the call ends; host functions run only inside the call.
        #[allow(unsafe_code)]
        self.request
            .map(|p| unsafe { p.as_ref() })
            .ok_or_else(|| wasmtime::Error::msg("no request is lent outside a filter call"))
    }

    fn response(&self) -> wasmtime::Result<(u16, &Headers<'_>)> {
        // SAFETY: as for `request`.
        #[allow(unsafe_code)]
        self.response
            .map(|(status, p)| (status, unsafe { p.as_ref() }))
            .ok_or_else(|| wasmtime::Error::msg("no response head is lent in this phase"))
    }
}

/// Store data that can lend heads to its guest.
pub(crate) trait HeadsView: Send + 'static {
    fn lent(&self) -> &Lent;
    fn lent_mut(&mut self) -> &mut Lent;
}

/// Run `call` with `req` (and `resp`, in the response phases) lent to the store's guest.
pub(crate) fn lend<T: HeadsView, R>(
    store: &mut Store<T>,
    req: &Request<'_>,
    resp: Option<(u16, &Headers<'_>)>,
    call: impl FnOnce(&mut Store<T>) -> R,
) -> R {
    struct Lending<'s, T: HeadsView>(&'s mut Store<T>);
    impl<T: HeadsView> Drop for Lending<'_, T> {
        fn drop(&mut self) {
            *self.0.data_mut().lent_mut() = Lent::default();
        }
    }
    *store.data_mut().lent_mut() = Lent {
        request: Some(NonNull::from(req).cast()),
        response: resp.map(|(status, h)| (status, NonNull::from(h).cast())),
    };
    let lending = Lending(store);
    call(&mut *lending.0)
}

/// The `types` interface of 0.2: both resources and their methods.
pub(crate) fn add_to_linker<T: HeadsView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    let mut types = linker.instance(TYPES)?;
    types.resource(
        "request",
        ResourceType::host::<RequestHead>(),
        |_, _| Ok(()),
    )?;
    types.resource(
        "response-head",
        ResourceType::host::<ResponseHead>(),
        |_, _| Ok(()),
    )?;
    type Req = (Resource<RequestHead>,);
    let field = |pick: for<'a> fn(&'a Request<'a>) -> &'a str| {
        move |cx: StoreContextMut<'_, T>, _: Req| {
            Ok((pick(cx.data().lent().request()?).to_string(),))
        }
    };
    types.func_wrap("[method]request.method", field(|r| r.method))?;
    types.func_wrap("[method]request.scheme", field(|r| r.scheme))?;
    types.func_wrap("[method]request.authority", field(|r| r.authority))?;
    types.func_wrap("[method]request.path", field(|r| r.path))?;
    types.func_wrap("[method]request.query", field(|r| r.query))?;
    types.func_wrap("[method]request.client-addr", field(|r| r.client_addr))?;
    types.func_wrap("[method]request.route", field(|r| r.route))?;
    header_methods::<T, RequestHead>(&mut types, "request", |l| Ok(&l.request()?.headers))?;
    type Resp = (Resource<ResponseHead>,);
    types.func_wrap(
        "[method]response-head.status",
        |cx: StoreContextMut<'_, T>, _: Resp| Ok((cx.data().lent().response()?.0,)),
    )?;
    header_methods::<T, ResponseHead>(&mut types, "response-head", |l| Ok(l.response()?.1))?;
    Ok(())
}

/// The methods both heads have, reading the headers `heads` finds lent: `header`,
/// `header-all` and `headers` of `resource`.
fn header_methods<T: HeadsView, H: 'static>(
    types: &mut LinkerInstance<'_, T>,
    resource: &str,
    heads: for<'a> fn(&'a Lent) -> wasmtime::Result<&'a Headers<'a>>,
) -> wasmtime::Result<()> {
    types.func_wrap(
        &format!("[method]{resource}.header"),
        move |cx: StoreContextMut<'_, T>, (_, name): (Resource<H>, WasmStr)| {
            Ok((first(heads(cx.data().lent())?, &name.to_str(&cx)?),))
        },
    )?;
    types.func_wrap(
        &format!("[method]{resource}.header-all"),
        move |cx: StoreContextMut<'_, T>, (_, name): (Resource<H>, WasmStr)| {
            Ok((all(heads(cx.data().lent())?, &name.to_str(&cx)?),))
        },
    )?;
    types.func_wrap(
        &format!("[method]{resource}.headers"),
        move |cx: StoreContextMut<'_, T>, _: (Resource<H>,)| Ok((list(heads(cx.data().lent())?),)),
    )
}

fn first(headers: &Headers<'_>, name: &str) -> Option<Vec<u8>> {
    headers.get_all(name).next().map(<[u8]>::to_vec)
}

fn all(headers: &Headers<'_>, name: &str) -> Vec<Vec<u8>> {
    headers.get_all(name).map(<[u8]>::to_vec).collect()
}

fn list(headers: &Headers<'_>) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.to_vec()))
        .collect()
}
