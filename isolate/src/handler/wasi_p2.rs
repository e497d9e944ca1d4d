//! Serving a request with a WASI 0.2 handler (`wasi:http/incoming-handler@0.2.x`): the guest
//! runs on a task of its own and hands its response head back through an outparam; the body
//! then streams straight from the guest's outgoing body.

use super::body::{Frames, RequestBody, ResponseBody};
use super::{HandlerState, LoadedHandler};
use crate::error::IsolateError;
use crate::limits::Permit;
use std::sync::Arc;
use wasmtime::Store;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::Proxy;
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
            let result = match tokio::time::timeout(deadline, call).await {
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
        match tokio::time::timeout(deadline, receiver).await {
            Ok(Ok(Ok(response))) => Ok(response.map(|body| ResponseBody {
                body: Frames::Wasi02(body),
                handler: self.name.clone(),
            })),
            Ok(Ok(Err(code))) => Err(self.invalid(format!("handler answered an error: {code:?}"))),
            // The outparam was dropped unset: the task's result says why.
            Ok(Err(_)) => Err(self.without_response(task).await),
            Err(_) => {
                task.abort();
                Err(self.deadline())
            }
        }
    }
}
