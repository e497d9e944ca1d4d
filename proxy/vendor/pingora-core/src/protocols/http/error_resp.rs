// Copyright 2026 Cloudflare, Inc.
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
// http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.

//! Error response generating utilities.

use http::header;
use once_cell::sync::Lazy;
use pingora_http::ResponseHeader;

use super::SERVER_NAME;

/// Breakwater patch: the `Server` value of the error responses pingora writes itself (a
/// request it cannot parse, say), set by the application; `None` sends none. The default
/// is pingora's own name, as before.
static ERROR_SERVER_NAME: std::sync::RwLock<Option<&'static [u8]>> =
    std::sync::RwLock::new(Some(SERVER_NAME.as_slice()));

/// Breakwater patch: set what [`gen_error_response`] writes as `Server` from now on.
pub fn set_error_server_name(name: Option<&'static str>) {
    let mut current = ERROR_SERVER_NAME.write().unwrap_or_else(|e| e.into_inner());
    *current = name.map(str::as_bytes);
}

/// Generate an error response with the given status code.
///
/// This error response has a zero `Content-Length` and `Cache-Control: private, no-store`.
pub fn gen_error_response(code: u16) -> ResponseHeader {
    let mut resp = ResponseHeader::build(code, Some(4)).unwrap();
    let server = *ERROR_SERVER_NAME.read().unwrap_or_else(|e| e.into_inner());
    if let Some(server) = server {
        resp.insert_header(header::SERVER, server).unwrap();
    }
    resp.insert_header(header::DATE, "Sun, 06 Nov 1994 08:49:37 GMT")
        .unwrap(); // placeholder
    resp.insert_header(header::CONTENT_LENGTH, "0").unwrap();
    resp.insert_header(header::CACHE_CONTROL, "private, no-store")
        .unwrap();
    resp
}

/// Pre-generated 502 response
pub static HTTP_502_RESPONSE: Lazy<ResponseHeader> = Lazy::new(|| gen_error_response(502));
/// Pre-generated 400 response
pub static HTTP_400_RESPONSE: Lazy<ResponseHeader> = Lazy::new(|| gen_error_response(400));
