//! Test harness: real origins, the real `breakwater` binary, real clients, all on loopback.
#![allow(dead_code, unused_imports)]

pub mod certs;
pub mod client;
pub mod dns;
pub mod node;
pub mod origin;

pub use client::{Client, Reply};
pub use node::Node;
pub use origin::{Origin, Seen};
