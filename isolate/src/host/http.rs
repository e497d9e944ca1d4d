//! Outgoing HTTP for handlers, through wasmtime-wasi-http's client: only to the hosts in the
//! component's `allowed_outbound_hosts`; everything else is denied before a socket is opened.

use http_body_util::BodyExt;
use std::sync::Arc;
use wasmtime_wasi_http::WasiHttpHooks;

/// Outgoing HTTP: only to the allowed hosts, through wasmtime-wasi-http's client.
pub(crate) struct OutboundPolicy {
    pub allowed: Arc<[String]>,
}

impl OutboundPolicy {
    fn allows(&self, authority: Option<&http::uri::Authority>) -> bool {
        let Some(authority) = authority else {
            return false;
        };
        self.allowed
            .iter()
            .any(|a| a.eq_ignore_ascii_case(authority.as_str()) || a == authority.host())
    }
}

type SendFuture = Box<
    dyn std::future::Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<wasmtime_wasi_http::WasiBody>,
                Box<dyn std::future::Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
            )>,
        > + Send,
>;

impl WasiHttpHooks for OutboundPolicy {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn std::future::Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> SendFuture {
        if !self.allows(request.uri().authority()) {
            tracing::debug!(uri = %request.uri(), "outgoing HTTP request denied");
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        Box::new(async move {
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn std::future::Future<Output = _> + Send>,
            ))
        })
    }
}
