//! Serving a request with a WASI 0.3 handler (`wasi:http/handler@0.3.x`, as the Spin SDK 5
//! produces): the guest runs in the store's event loop (`run_concurrent`) on a task of its
//! own, which also pumps the response body to the caller.

use super::body::{Frames, RequestBody, ResponseBody};
use super::{HandlerState, LoadedHandler};
use crate::error::IsolateError;
use crate::limits::Permit;
use bytes::Bytes;
use http_body_util::BodyExt;
use std::sync::Arc;
use wasmtime::Store;
use wasmtime_wasi_http::p3::bindings::Service;

impl LoadedHandler {
    /// The guest keeps producing its body only while the store's event loop runs.
    pub(super) async fn handle_p3(
        self: &Arc<Self>,
        mut store: Store<HandlerState>,
        service: Service,
        reset: Option<super::Reset>,
        permit: Permit,
        request: http::Request<RequestBody>,
        keep: Option<super::Keep>,
    ) -> Result<http::Response<ResponseBody>, IsolateError> {
        let (req, request_io) = wasmtime_wasi_http::p3::Request::from_http(
            &mut store.data_mut().hooks,
            request.map(|b| b.0),
        );
        // The deadline runs from now, not from when the instance was made.
        self.start_deadline(&mut store);
        let (head_tx, head_rx) = tokio::sync::oneshot::channel::<http::response::Parts>();
        let (body_tx, body_rx) = tokio::sync::mpsc::channel::<Result<Bytes, String>>(4);
        let deadline = self.limits.deadline;
        let task_inner = self.clone();
        let task = self.spawn_guest(async move {
            let _permit = permit;
            // Reports a failure to read the request body; the guest sees it too.
            let _request_io = tokio::spawn(request_io);
            let exports = &service;
            // Reset in place needs the guest's task to have exited, not only returned.
            let drain = reset.is_some();
            let run = store.run_concurrent(async move |acc| {
                let response = match exports.handle(acc, req).await? {
                    Ok(response) => response,
                    Err(code) => return Ok(Err(format!("handler answered an error: {code:?}"))),
                };
                let response = acc.with(|s| response.into_http(s, async { Ok(()) }))?;
                let (parts, mut body) = response.into_parts();
                if head_tx.send(parts).is_err() {
                    return Ok(Ok(()));
                }
                while let Some(frame) = body.frame().await {
                    let chunk = match frame {
                        Ok(frame) => match frame.into_data() {
                            Ok(data) => Ok(data),
                            Err(_trailers) => continue,
                        },
                        Err(e) => Err(format!("response body: {e:?}")),
                    };
                    let failed = chunk.is_err();
                    if body_tx.send(chunk).await.is_err() || failed {
                        break;
                    }
                }
                // The body has ended for the client, whatever the guest does next.
                drop(body_tx);
                drop(body);
                if drain {
                    std::future::poll_fn(|cx| acc.poll_no_interesting_tasks(cx)).await;
                }
                wasmtime::Result::Ok(Ok(()))
            });
            let result = match tokio::time::timeout(deadline, run).await {
                Ok(Ok(Ok(Ok(())))) => Ok(()),
                Ok(Ok(Ok(Err(reason)))) => Err(task_inner.invalid(reason)),
                Ok(Ok(Err(e)) | Err(e)) => Err(task_inner.classify(store.data(), e)),
                Err(_) => Err(task_inner.deadline()),
            };
            if let Err(e) = &result {
                tracing::warn!(handler = %task_inner.name, error = %e, "handler failed")
            }
            if let Some(keep) = keep {
                let _ = keep.send(store);
            } else if let (Ok(()), Some(reset)) = (&result, reset) {
                task_inner.recycle(store, super::HandlerExports::Wasi03(service), reset);
            }
            result
        });
        match tokio::time::timeout(deadline, head_rx).await {
            Ok(Ok(parts)) => Ok(http::Response::from_parts(
                parts,
                ResponseBody {
                    body: Frames::Wasi03(body_rx),
                    handler: self.name.clone(),
                },
            )),
            // No response head: the task's result says why.
            Ok(Err(_)) => Err(self.without_response(task).await),
            Err(_) => {
                task.abort();
                Err(self.deadline())
            }
        }
    }
}
