//! psa-mail-agent turns support email into PSA tickets.
#![deny(unsafe_code)]

#[forbid(unsafe_code)]
pub mod agent;
#[forbid(unsafe_code)]
pub mod backoff;
#[forbid(unsafe_code)]
pub mod cli_log;
#[forbid(unsafe_code)]
pub mod config;
#[forbid(unsafe_code)]
pub mod daemon;
#[forbid(unsafe_code)]
pub mod delivery;
#[forbid(unsafe_code)]
pub mod error;
#[allow(unsafe_code)]
pub mod ffi;
#[forbid(unsafe_code)]
pub mod graph;
#[forbid(unsafe_code)]
pub mod http;
#[forbid(unsafe_code)]
pub mod imap;
#[forbid(unsafe_code)]
pub(crate) mod json;
#[forbid(unsafe_code)]
pub mod net;
#[forbid(unsafe_code)]
pub mod oauth;
#[forbid(unsafe_code)]
pub mod secret;
#[forbid(unsafe_code)]
pub mod state;
#[forbid(unsafe_code)]
pub mod ticket;
#[forbid(unsafe_code)]
pub mod tls;

pub use error::{Error, ErrorKind, Result};
pub use secret::Secret;
