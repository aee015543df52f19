//! OAuth 2.0 token provider (interface placeholder until the token client lands; see issue 3).

use crate::config::OAuth;
use crate::error::{Error, ErrorKind, Result};
use crate::secret::Secret;
use std::path::PathBuf;
use std::time::Duration;

/// Obtains and renews access tokens for one identity.
pub struct TokenProvider {
    _cache: PathBuf,
}

impl TokenProvider {
    /// A provider for `username` under `oauth`.
    pub fn new(
        _oauth: &OAuth,
        _username: &str,
        _password: Option<Secret>,
        cache: PathBuf,
        _timeout: Duration,
    ) -> Result<Self> {
        Ok(TokenProvider { _cache: cache })
    }

    /// A valid access token.
    pub async fn access_token(&mut self) -> Result<Secret> {
        Err(Error::new(
            ErrorKind::SignInRequired,
            "OAuth token client not built yet",
        ))
    }

    /// Drops the cached access token and gets a new one.
    pub async fn invalidate_and_refresh(&mut self) -> Result<Secret> {
        self.access_token().await
    }
}
