//! Front ends: where client connections arrive and become requests for the pipeline.
//!
//! TCP listeners (HTTP/1.1 and HTTP/2, plain or TLS) are pingora's, wrapped in the client
//! limits of `clients`; `tls` chooses a certificate per SNI name; `h3` serves HTTP/3 over
//! QUIC and hands each request stream to the same pipeline as a pingora custom session.

pub mod clients;
pub mod h3;
pub mod tls;
