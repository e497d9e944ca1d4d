//! Serving a request with a WASI 0.2 handler (`wasi:http/incoming-handler@0.2.x`): the guest
//! runs on a task of its own and hands its response head back through an outparam; the body
//! then streams straight from the guest's outgoing body.
//!
//! The guest's task answers the caller once, with the head and whatever body the guest has
//! written by the time it returns or waits: a guest that answers at once (most do) costs its
//! caller one wake-up, not one for the head, one per write and one for the body's end. Off
//! the event loop each of those was a thread hand-off (a JavaScript hello handler spent as
//! much on them as on its own code: bench/README.md).

use super::body::{Frames, Prefetched, RequestBody, ResponseBody};
use super::{HandlerState, LoadedHandler};
use crate::error::IsolateError;
use crate::limits::Permit;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use wasmtime::Store;
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::Proxy;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::WasiHttpView;

impl LoadedHandler {
    pub(super) async fn handle_p2(
        self: &Arc<Self>,
        mut store: Store<HandlerState>,
        proxy: Proxy,
        reset: Option<super::Reset>,
        permit: Permit,
        request: http::Request<RequestBody>,
        keep: Option<super::Keep>,
    ) -> Result<http::Response<ResponseBody>, IsolateError> {
        let scheme = match request.uri().scheme_str() {
            Some("https") => Scheme::Https,
            _ => Scheme::Http,
        };
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let (answer, answered) = tokio::sync::oneshot::channel();
        let (req, out) = {
            let mut http = store.data_mut().http();
            let req = http
                .new_incoming_request(scheme, request.map(|b| b.0))
                .map_err(|e| self.invalid(format!("request: {e:#}")))?;
            let out = http
                .new_response_outparam(sender)
                .map_err(|e| self.invalid(format!("response: {e:#}")))?;
            (req, out)
        };
        // The deadline runs from now, not from when the instance was made.
        self.start_deadline(&mut store);
        let deadline = self.limits.deadline;
        let task_inner = self.clone();
        let task = self.spawn_guest(async move {
            let _permit = permit;
            let call = proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, req, out);
            let call = tokio::time::timeout(deadline, call);
            let result = match run_and_answer(call, receiver, answer).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(task_inner.classify(store.data(), e)),
                Err(_) => Err(task_inner.deadline()),
            };
            if let Err(e) = &result {
                tracing::warn!(handler = %task_inner.name, error = %e, "handler failed")
            }
            if let Some(keep) = keep {
                let _ = keep.send(store);
            } else if let (Ok(()), Some(reset)) = (&result, reset) {
                task_inner.recycle(store, super::HandlerExports::Wasi02(proxy), reset);
            }
            result
        });
        match tokio::time::timeout(deadline, answered).await {
            Ok(Ok(Ok(response))) => Ok(response.map(|body| ResponseBody {
                body: Frames::Wasi02(body),
                handler: self.name.clone(),
            })),
            Ok(Ok(Err(code))) => Err(self.invalid(format!("handler answered an error: {code:?}"))),
            // No response head: the task's result says why.
            Ok(Err(_)) => Err(self.without_response(task).await),
            Err(_) => {
                task.abort();
                Err(self.deadline())
            }
        }
    }
}

/// Most of a response body gathered before the caller is answered; the rest streams.
const GATHER_BYTES: usize = 64 << 10;

/// What the guest's outparam receives.
type Head = Result<http::Response<HyperOutgoingBody>, ErrorCode>;

/// Run the guest's `call` and answer the caller through `answer` once: when the guest has set
/// its response head, with the head and the body frames written by then (the guest ran as
/// far as it could before this: to its return, or to a wait), up to [`GATHER_BYTES`]; the rest
/// of the body streams from the guest. `answer` is dropped unanswered when the guest returns
/// without setting a head (its result then says why). Returns the call's result.
async fn run_and_answer<R>(
    call: impl Future<Output = R>,
    mut head: tokio::sync::oneshot::Receiver<Head>,
    answer: tokio::sync::oneshot::Sender<Result<http::Response<Prefetched>, ErrorCode>>,
) -> R {
    let mut call = std::pin::pin!(call);
    let mut done = None;
    let mut answer = Some(answer);
    std::future::poll_fn(|cx| {
        // The guest first, as far as it goes.
        if done.is_none() {
            if let Poll::Ready(r) = call.as_mut().poll(cx) {
                done = Some(r);
            }
        }
        if answer.is_some() {
            match Pin::new(&mut head).poll(cx) {
                Poll::Ready(Ok(set)) => {
                    let to_caller = set.map(|response| {
                        let (parts, body) = response.into_parts();
                        http::Response::from_parts(
                            parts,
                            Prefetched::gather(body, GATHER_BYTES, cx),
                        )
                    });
                    if let Some(answer) = answer.take() {
                        let _ = answer.send(to_caller);
                    }
                }
                // Dropped unset; or the guest returned and left it unset.
                Poll::Ready(Err(_)) => answer = None,
                Poll::Pending if done.is_some() => answer = None,
                Poll::Pending => {}
            }
        }
        // Over once the guest has returned and the caller has its answer (or never will).
        match done.take() {
            Some(r) if answer.is_none() => Poll::Ready(r),
            d => {
                done = d;
                Poll::Pending
            }
        }
    })
    .await
}
