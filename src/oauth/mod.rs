//! OAuth 2.0 tokens from the Microsoft identity platform (or a test identity endpoint): the
//! password (ROPC), refresh-token, client-credentials and device-code grants, a token cache file
//! that keeps Microsoft's rotating refresh tokens, and Microsoft's AADSTS errors mapped to kinds
//! with the administrator's fix.
//!
//! Tokens know no mailbox: a [`TokenProvider`] hands out access tokens; the agent gives them to
//! IMAP. Passwords, client secrets and tokens appear in no log, error or Debug output.
//!
//! ```no_run
//! # async fn example(
//! #     mailbox: &psa_mail_agent::config::Mailbox,
//! #     state_dir: &std::path::Path,
//! # ) -> psa_mail_agent::Result<()> {
//! use psa_mail_agent::oauth::{ProviderOptions, TokenProvider};
//! let mut tokens = TokenProvider::new(
//!     &mailbox.oauth,
//!     &mailbox.username,
//!     mailbox.password.clone(),
//!     ProviderOptions {
//!         cache_path: Some(state_dir.join(format!("{}.token.json", mailbox.name))),
//!         timeout: std::time::Duration::from_secs(mailbox.imap.timeout_secs),
//!         sign_in_command: format!(
//!             "psa-mail-agent login --config agent.json --mailbox {}",
//!             mailbox.name
//!         ),
//!         ..ProviderOptions::default()
//!     },
//! )?;
//! let token = tokens.access_token().await?; // token.expose() goes into AUTHENTICATE XOAUTH2
//! // The server refused a token the identity platform issued: one new token, one retry.
//! let token = tokens.invalidate_and_refresh().await?;
//! # Ok(())
//! # }
//! ```

mod cache;
pub mod cert;
mod discovery;
mod errors;
pub mod lifetimes;
mod wire;

pub use discovery::TenantInfo;

use crate::config::{Flow, OAuth};
use crate::error::{Error, ErrorKind, Result};
use crate::http::{self, HttpOptions, Url};
use crate::secret::Secret;
use cache::{Binding, Identity, Secrets, Tokens};
use errors::ErrorAnswer;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

/// Delegated scope for IMAP, with `offline_access` for a refresh token.
pub const DELEGATED_SCOPE: &str = "https://outlook.office.com/IMAP.AccessAsUser.All offline_access";
/// App-only scope (client credentials).
pub const APP_SCOPE: &str = "https://outlook.office365.com/.default";
/// The Microsoft Graph resource of the global cloud (the audience of Graph tokens).
pub const GRAPH_RESOURCE: &str = "https://graph.microsoft.com";

/// The scopes `(delegated, app-only)` for Microsoft Graph mail at `resource`
/// (`https://graph.microsoft.com`, or a national cloud's Graph host): delegated
/// `Mail.ReadWrite.Shared` (a delegate reading a shared mailbox; also covers the own mailbox)
/// with `offline_access`, app-only `.default` (the application permission Mail.ReadWrite).
pub fn graph_scopes(resource: &str) -> (String, String) {
    let r = resource.trim_end_matches('/');
    (
        format!("{r}/Mail.ReadWrite.Shared offline_access"),
        format!("{r}/.default"),
    )
}
const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// `client_assertion_type` of a certificate credential (RFC 7523).
const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// RFC 8628: `slow_down` adds 5 s to the polling interval (1 s in unit tests, to keep them fast).
const SLOW_DOWN_STEP: Duration = if cfg!(test) {
    Duration::from_secs(1)
} else {
    Duration::from_secs(5)
};

/// How a [`TokenProvider`] works, beyond the mailbox's OAuth settings.
#[derive(Debug, Clone)]
pub struct ProviderOptions {
    /// The token cache file (e.g. `state_dir/NAME.token.json`); `None`: tokens live in memory only.
    pub cache_path: Option<PathBuf>,
    /// Limit of every network step.
    pub timeout: Duration,
    /// Extra CA certificates (PEM) trusted for the authority.
    pub ca_file: Option<PathBuf>,
    /// The command that signs in interactively, shown in fixes
    /// (`psa-mail-agent login --config F --mailbox NAME`).
    pub sign_in_command: String,
    /// An access token is renewed this long before it expires (at most half its lifetime).
    pub renew_margin: Duration,
    /// After a failure that needs an administrator (wrong password, locked account, ...), the same
    /// error is answered from memory for this long instead of asking the identity platform again
    /// (repeated wrong passwords lock accounts).
    pub failure_backoff: Duration,
    /// Where the tenant found by discovery is cached (`state_dir/NAME.tenant.json`) when
    /// `oauth.directory_id` is empty; `None`: discovered anew by each provider.
    pub tenant_cache: Option<PathBuf>,
    /// The address whose domain names the tenant when `oauth.directory_id` is empty (the
    /// mailbox's email for app-only sign-in); `None`: the username's.
    pub discovery_address: Option<String>,
    /// Scopes `(delegated, app-only)` asked for instead of the cloud's IMAP scopes
    /// (Microsoft Graph for `transport: "graph"`).
    pub scopes: Option<(String, String)>,
}

impl Default for ProviderOptions {
    fn default() -> Self {
        ProviderOptions {
            cache_path: None,
            timeout: Duration::from_secs(30),
            ca_file: None,
            sign_in_command: "psa-mail-agent login --config F --mailbox NAME".to_string(),
            renew_margin: Duration::from_secs(300),
            failure_backoff: Duration::from_secs(300),
            tenant_cache: None,
            discovery_address: None,
            scopes: None,
        }
    }
}

/// What the person signing in with a device code must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCodePrompt {
    /// The page to open (`https://microsoft.com/devicelogin`).
    pub verification_uri: String,
    /// The code to enter there.
    pub user_code: String,
    /// Microsoft's instruction text.
    pub message: String,
    /// How long the code is valid.
    pub expires_in: Duration,
}

/// Access tokens for one identity (application, tenant, user, flow): cached, renewed before they
/// expire, refreshed with the stored (rotating) refresh token, and obtained again by the configured
/// flow when the refresh token is refused.
#[derive(Debug)]
pub struct TokenProvider {
    identity: Identity,
    flow: Flow,
    password: Option<Secret>,
    client_secret: Option<Secret>,
    /// The app's certificate (`client_certificate_file`), signing client assertions.
    certificate: Option<std::sync::Arc<cert::ClientCertificate>>,
    /// Its SHA-256 thumbprint: what the token cache is bound to.
    certificate_binding: Option<Secret>,
    token_url: String,
    devicecode_url: String,
    /// Host (and port) of the token endpoint, for messages.
    endpoint: String,
    /// The tenant segment of the endpoint URLs; `None` until discovery found it.
    tenant: Option<String>,
    /// The domain the tenant is discovered from (`oauth.directory_id` empty).
    discovery_domain: Option<String>,
    /// What discovery found (or the cache held).
    tenant_info: Option<TenantInfo>,
    /// Where the authority came from, for fixes.
    authority_origin: String,
    /// The delegated IMAP scope of the cloud.
    delegated_scope: String,
    /// The app-only scope of the cloud.
    app_scope: String,
    http: HttpOptions,
    options: ProviderOptions,
    tokens: Tokens,
    /// The binding of the cache file to the secrets configured now (made before the first
    /// write when the loaded file had none that matched).
    binding: Option<Binding>,
    /// The cache file lags behind `tokens` (a write failed): written again before the next use.
    unsaved: bool,
    last_failure: Option<(Instant, Error)>,
    /// Tokens obtained from the endpoint so far (any grant; `run` reports it as a metric).
    grants: u64,
    /// A device-code sign-in begun and not yet completed.
    pending_device: Option<PendingDevice>,
}

/// A device code handed out by the identity platform, waiting for the person to sign in.
#[derive(Debug)]
struct PendingDevice {
    device_code: Secret,
    deadline: Instant,
    interval: Duration,
    transient_failures: u32,
}

/// A refused request: the mapped error plus the OAuth error code the flows branch on.
struct Refusal {
    error: Error,
    answer: Option<ErrorAnswer>,
}

impl From<Error> for Refusal {
    fn from(error: Error) -> Self {
        Refusal {
            error,
            answer: None,
        }
    }
}

fn flow_name(flow: Flow) -> &'static str {
    match flow {
        Flow::Password => "password",
        Flow::ClientCredentials => "client_credentials",
        Flow::DeviceCode => "device_code",
    }
}

/// Unix seconds as `2027-03-31T12:00:00Z`.
pub(crate) fn utc_text(secs: u64) -> String {
    let t = crate::cli_log::rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
    format!("{}Z", &t[..19])
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The fix for a token endpoint this machine cannot reach: where its host came from (the
/// default authority or `oauth.authority`), DNS, the firewall and `oauth.proxy`.
pub(crate) fn unreachable_fix(host: &str, source: &str, proxy: Option<&str>) -> String {
    match proxy {
        None => format!(
            "this machine cannot reach the token endpoint {host}, taken from {source}: check \
             that DNS resolves it (nslookup {host}) and that the firewall lets this machine open \
             HTTPS connections to it; where the web is reachable only through a proxy, set \
             oauth.proxy to \"http://proxy-host:port\". The agent tries again later"
        ),
        Some(proxy) => format!(
            "the token endpoint {host}, taken from {source}, is reached through oauth.proxy \
             {proxy}: check that DNS resolves the proxy's host, that the proxy answers on that \
             port and that it allows HTTPS to {host}; remove oauth.proxy if this machine reaches \
             the web directly. The agent tries again later"
        ),
    }
}

impl TokenProvider {
    /// A provider for `oauth` signing in as `username` (with `password` for the password flow;
    /// it may be absent when the cache holds a refresh token). Loads the token cache.
    pub fn new(
        oauth: &OAuth,
        username: &str,
        password: Option<Secret>,
        options: ProviderOptions,
    ) -> Result<TokenProvider> {
        let authority = oauth.authority.trim().trim_end_matches('/').to_string();
        let url = Url::parse(&authority)
            .map_err(|e| Error::config("oauth.authority", e.message().to_string()))?;
        url.require_secure_transport("oauth.authority")?;
        let client_id = oauth.application_id.trim().to_string();
        if client_id.is_empty() {
            return Err(Error::config("oauth.application_id", "missing")
                .with_fix("set Application ID to the app registration's Application (client) ID"));
        }
        if !client_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(Error::config(
                "oauth.application_id",
                format!("{client_id:?} is not an application (client) ID"),
            )
            .with_fix(
                "copy the Application (client) ID GUID from the app registration's Overview",
            ));
        }
        let configured = oauth.directory_id.trim().to_string();
        let mut discovery_domain = None;
        let mut tenant_info = None;
        let (tenant_key, tenant) = if configured.is_empty() {
            // No Directory ID: the tenant is read from the OpenID configuration of the
            // address's domain (before the first request), or from the cache of an earlier run.
            let address = options
                .discovery_address
                .clone()
                .unwrap_or_else(|| username.to_string());
            let domain = discovery::domain_of(&address).ok_or_else(|| {
                Error::config(
                    "oauth.directory_id",
                    format!(
                        "is not set, and the address {:?} has no domain to find the tenant from",
                        crate::json::shorten(&address)
                    ),
                )
                .with_fix(
                    "set oauth.directory_id to the Directory (tenant) ID from the app \
                     registration's Overview",
                )
            })?;
            tenant_info = options
                .tenant_cache
                .as_ref()
                .and_then(|p| discovery::load(p, &authority, &domain));
            discovery_domain = Some(domain.clone());
            (domain, tenant_info.as_ref().map(|t| t.tenant_id.clone()))
        } else {
            if !configured
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            {
                return Err(Error::config(
                    "oauth.directory_id",
                    format!("{configured:?} is not a tenant ID or domain"),
                )
                .with_fix(
                    "copy the Directory (tenant) ID GUID from the app registration's Overview",
                ));
            }
            (configured.clone(), Some(configured))
        };
        let authority_origin = if authority == oauth.cloud.authority() {
            format!(
                "the authority of oauth.cloud \"{}\" ({authority})",
                oauth.cloud.name()
            )
        } else {
            format!("oauth.authority {authority}")
        };
        let client_secret = oauth.client_secret.clone().filter(|s| !s.is_empty());
        let certificate = match &oauth.client_certificate_file {
            Some(path) => Some(std::sync::Arc::new(cert::ClientCertificate::load(path)?)),
            None => None,
        };
        if oauth.flow == Flow::ClientCredentials && client_secret.is_none() && certificate.is_none()
        {
            return Err(Error::config(
                "oauth.client_secret",
                "flow \"client_credentials\" needs a client secret or a certificate",
            )
            .with_fix("set client_secret, client_secret_env or client_secret_file to the secret's Value, or client_certificate_file to a PEM file with the certificate and its private key (App registration > Certificates & secrets)"));
        }
        let certificate_binding = certificate.as_ref().map(|c| Secret::new(c.sha256_hex()));
        if let Some(proxy) = &oauth.proxy {
            // Checked here so that a malformed proxy (or one with a password in it, which is
            // refused) fails at start, not at the first token request.
            let p = Url::parse(proxy)
                .map_err(|e| Error::config("oauth.proxy", e.message().to_string()))?;
            if p.scheme != http::Scheme::Http || p.path != "/" {
                return Err(Error::config(
                    "oauth.proxy",
                    "expected http://host:port (HTTPS goes through it in a CONNECT tunnel)",
                ));
            }
        }
        let identity = Identity {
            authority: authority.clone(),
            client_id,
            tenant: tenant_key.clone(),
            username: username.trim().to_string(),
            flow: flow_name(oauth.flow),
        };
        let password = password.filter(|p| !p.is_empty());
        let loaded = match &options.cache_path {
            Some(path) => cache::load(
                path,
                &identity,
                secret_set(
                    oauth.flow,
                    password.as_ref(),
                    client_secret.as_ref(),
                    certificate_binding.as_ref(),
                ),
            ),
            None => cache::Loaded::default(),
        };
        let http = HttpOptions {
            timeout: options.timeout,
            ca_file: options.ca_file.clone(),
            proxy: oauth.proxy.clone(),
            ..HttpOptions::default()
        };
        let segment = tenant.clone().unwrap_or_else(|| tenant_key.clone());
        Ok(TokenProvider {
            token_url: format!("{authority}/{segment}/oauth2/v2.0/token"),
            devicecode_url: format!("{authority}/{segment}/oauth2/v2.0/devicecode"),
            endpoint: url.authority(),
            tenant,
            discovery_domain,
            tenant_info,
            authority_origin,
            delegated_scope: options.scopes.as_ref().map_or_else(
                || oauth.cloud.delegated_scope().to_string(),
                |s| s.0.clone(),
            ),
            app_scope: options
                .scopes
                .as_ref()
                .map_or_else(|| oauth.cloud.app_scope().to_string(), |s| s.1.clone()),
            identity,
            flow: oauth.flow,
            password,
            client_secret,
            certificate,
            certificate_binding,
            http,
            options,
            tokens: loaded.tokens,
            binding: loaded.binding,
            unsaved: false,
            last_failure: None,
            grants: 0,
            pending_device: None,
        })
    }

    /// Replaces the password (password flow). A different password invalidates every token
    /// obtained with the old one: the next request signs in with the new password.
    pub fn set_password(&mut self, password: Option<Secret>) {
        let password = password.filter(|p| !p.is_empty());
        if password != self.password {
            self.password = password;
            if self.flow == Flow::Password {
                self.forget_tokens("password");
            }
        }
    }

    /// Replaces the client secret. A different secret invalidates every token obtained with
    /// the old one.
    pub fn set_client_secret(&mut self, client_secret: Option<Secret>) {
        let client_secret = client_secret.filter(|s| !s.is_empty());
        if client_secret != self.client_secret {
            self.client_secret = client_secret;
            self.forget_tokens("client secret");
        }
    }

    fn forget_tokens(&mut self, what: &str) {
        if self.tokens != Tokens::default() {
            log::info!(
                "OAuth {}: the {what} for {} changed; tokens obtained with the old one are dropped",
                self.endpoint,
                self.identity.username
            );
        }
        self.tokens = Tokens::default();
        self.binding = None;
        self.last_failure = None;
        self.pending_device = None;
        // The file still holds the old tokens, bound to the old secret: ignored from now on.
        self.unsaved = false;
    }

    fn secrets(&self) -> Secrets<'_> {
        secret_set(
            self.flow,
            self.password.as_ref(),
            self.client_secret.as_ref(),
            self.certificate_binding.as_ref(),
        )
    }

    /// The app's certificate (`client_certificate_file`), when configured.
    pub fn certificate(&self) -> Option<&cert::ClientCertificate> {
        self.certificate.as_deref()
    }

    /// What the app signs in with, for messages: "the certificate (thumbprint …)" or "the
    /// client secret".
    fn app_credential(&self) -> String {
        match &self.certificate {
            Some(c) => format!(
                "the certificate (thumbprint {}) of application {}",
                c.thumbprint(),
                self.identity.client_id
            ),
            None => format!(
                "the client secret of application {}",
                self.identity.client_id
            ),
        }
    }

    /// Tokens obtained from the token endpoint by this provider (sign-ins and refreshes).
    pub fn grants(&self) -> u64 {
        self.grants
    }

    /// The token endpoint URL.
    pub fn token_url(&self) -> &str {
        &self.token_url
    }

    /// The tenant found from the address's domain (or cached from an earlier discovery);
    /// `None` when `oauth.directory_id` is configured or discovery has not run yet.
    pub fn tenant_info(&self) -> Option<&TenantInfo> {
        self.tenant_info.as_ref()
    }

    /// Whether the tenant is discovered from the address (no `oauth.directory_id`).
    pub fn discovers_tenant(&self) -> bool {
        self.discovery_domain.is_some()
    }

    /// Discovers the tenant now, even when it is cached (for `test`): `Ok(None)` when
    /// `oauth.directory_id` is configured.
    pub async fn discover_tenant(&mut self) -> Result<Option<TenantInfo>> {
        if self.discovery_domain.is_none() {
            return Ok(None);
        }
        self.tenant = None;
        self.ensure_tenant().await?;
        Ok(self.tenant_info.clone())
    }

    /// Makes sure the endpoint URLs name the tenant: discovers it when it is not known yet.
    async fn ensure_tenant(&mut self) -> Result<()> {
        if self.tenant.is_some() {
            return Ok(());
        }
        let Some(domain) = self.discovery_domain.clone() else {
            return Ok(());
        };
        let authority = self.identity.authority.clone();
        let info = discovery::discover(
            &authority,
            &domain,
            &self.http,
            &self.endpoint,
            &self.authority_origin,
        )
        .await?;
        if let Some(old) = &self.tenant_info {
            if old.tenant_id != info.tenant_id {
                log::warn!(
                    "OAuth {}: {domain} now belongs to tenant {} (was {})",
                    self.endpoint,
                    info.tenant_id,
                    old.tenant_id
                );
            }
        }
        log::info!("OAuth {}: {}", self.endpoint, info.describe());
        if let Some(path) = &self.options.tenant_cache {
            if let Err(e) = discovery::store(path, &authority, &info) {
                log::warn!("{e}");
            }
        }
        self.token_url = format!("{authority}/{}/oauth2/v2.0/token", info.tenant_id);
        self.devicecode_url = format!("{authority}/{}/oauth2/v2.0/devicecode", info.tenant_id);
        self.tenant = Some(info.tenant_id.clone());
        self.tenant_info = Some(info);
        Ok(())
    }

    /// Whether a refresh token is known (from the cache or a grant).
    pub fn has_refresh_token(&self) -> bool {
        self.tokens.refresh_token.is_some()
    }

    /// An access token valid for a while longer: the cached one, else one from the refresh
    /// token, else one from the configured flow (the device-code flow cannot run unattended:
    /// [`ErrorKind::SignInRequired`]).
    pub async fn access_token(&mut self) -> Result<Secret> {
        self.save_if_unsaved()?;
        if let Some(token) = self.valid_access_token() {
            return Ok(token);
        }
        self.obtain().await
    }

    /// Drops the access token (a server refused it although the identity platform issued it:
    /// expired or revoked there) and obtains a new one, trying the refresh token first.
    pub async fn invalidate_and_refresh(&mut self) -> Result<Secret> {
        if self.tokens.access_token.take().is_some() {
            log::info!(
                "OAuth {}: access token for {} refused by the server; getting a new one",
                self.endpoint,
                self.identity.username
            );
        }
        self.tokens.expires_at = 0;
        self.tokens.renew_at = 0;
        if let Err(e) = self.save() {
            log::warn!("{e}");
        }
        self.obtain().await
    }

    /// Signs in with a device code: shows the code through `prompt`, polls the token endpoint
    /// until the person signed in (or declined, or the code expired), and stores the tokens.
    pub async fn device_login(&mut self, mut prompt: impl FnMut(&DeviceCodePrompt)) -> Result<()> {
        let shown = self.device_login_begin().await?;
        prompt(&shown);
        self.device_login_complete().await
    }

    /// The first half of [`TokenProvider::device_login`], for a host with its own UI: asks the
    /// identity platform for a device code and returns what the person must do. The code waits
    /// for [`TokenProvider::device_login_complete`]; a second begin replaces it.
    pub async fn device_login_begin(&mut self) -> Result<DeviceCodePrompt> {
        self.pending_device = None;
        self.ensure_tenant().await?;
        let client_id = self.identity.client_id.clone();
        let scope = self.delegated_scope.clone();
        let form = [("client_id", client_id.as_str()), ("scope", scope.as_str())];
        let resp = http::post_form(&self.devicecode_url, &form, &self.http)
            .await
            .map_err(|e| self.network_error(e))?;
        if !resp.is_success() {
            return Err(self.refusal(&resp).error);
        }
        let answer = wire::device_code_answer(&resp.body);
        let Some(answer) = answer else {
            return Err(self.not_json(&resp, "device-code answer"));
        };
        let (Some(device_code), Some(user_code)) = (answer.device_code, answer.user_code) else {
            return Err(Error::new(
                ErrorKind::Protocol,
                format!(
                    "device-code endpoint {}: the answer lacks device_code or user_code",
                    self.endpoint
                ),
            ));
        };
        let device_code = Secret::new(device_code);
        let verification_uri = answer
            .verification_uri
            .or(answer.verification_url)
            .unwrap_or_else(|| "https://microsoft.com/devicelogin".to_string());
        let expires_in = Duration::from_secs(answer.expires_in.unwrap_or(900).clamp(1, 3600));
        let message = answer.message.unwrap_or_else(|| {
            format!("To sign in, open {verification_uri} and enter the code {user_code}.")
        });
        self.pending_device = Some(PendingDevice {
            device_code,
            deadline: Instant::now() + expires_in,
            interval: Duration::from_secs(answer.interval.unwrap_or(5).clamp(1, 60)),
            transient_failures: 0,
        });
        log::info!(
            "OAuth {}: device-code sign-in of {} begun: waiting for the person to enter the code at {verification_uri}",
            self.endpoint,
            self.identity.username
        );
        Ok(DeviceCodePrompt {
            verification_uri,
            user_code,
            message,
            expires_in,
        })
    }

    /// Whether a device-code sign-in was begun and waits for
    /// [`TokenProvider::device_login_complete`].
    pub fn device_login_pending(&self) -> bool {
        self.pending_device.is_some()
    }

    /// The second half of [`TokenProvider::device_login`]: polls the token endpoint until the
    /// person signed in (tokens stored), declined, or the code expired. Dropped before it ends
    /// (cancelled), the sign-in stays pending and may be completed by a later call.
    pub async fn device_login_complete(&mut self) -> Result<()> {
        let client_id = self.identity.client_id.clone();
        loop {
            let Some(pending) = self.pending_device.as_ref() else {
                return Err(Error::new(
                    ErrorKind::SignInRequired,
                    "no device-code sign-in is waiting to be completed: begin one first",
                ));
            };
            let (interval, deadline, device_code) = (
                pending.interval,
                pending.deadline,
                pending.device_code.clone(),
            );
            log::debug!(
                "OAuth {}: waiting {} s for the device-code sign-in of {}",
                self.endpoint,
                interval.as_secs(),
                self.identity.username
            );
            smol::Timer::after(interval).await;
            if Instant::now() >= deadline {
                self.pending_device = None;
                return Err(Error::new(
                    ErrorKind::DeviceCodeExpired,
                    format!(
                        "token endpoint {}: the device code expired before the sign-in was completed",
                        self.endpoint
                    ),
                )
                .with_fix("run the sign-in again and complete it within the time shown"));
            }
            let form = [
                ("grant_type", DEVICE_CODE_GRANT),
                ("client_id", client_id.as_str()),
                ("device_code", device_code.expose()),
            ];
            match self.grant(&form, "device code").await {
                Ok(_) => {
                    self.pending_device = None;
                    self.last_failure = None;
                    log::info!(
                        "OAuth {}: device-code sign-in of {} completed",
                        self.endpoint,
                        self.identity.username
                    );
                    return Ok(());
                }
                Err(r) => {
                    let code = r.answer.as_ref().map(|a| a.error.as_str());
                    let pending = self.pending_device.as_mut().expect("checked above");
                    match code {
                        Some("authorization_pending") => continue,
                        Some("slow_down") => {
                            pending.interval += SLOW_DOWN_STEP;
                            continue;
                        }
                        // Network trouble: poll on a little. Not a cache write failure (Io):
                        // the code was redeemed, polling again would only hide that error.
                        _ if r.error.is_temporary()
                            && r.error.kind() != ErrorKind::Io
                            && pending.transient_failures < 3 =>
                        {
                            pending.transient_failures += 1;
                            log::warn!("device-code sign-in: {} (polling on)", r.error);
                        }
                        _ => {
                            self.pending_device = None;
                            return Err(r.error);
                        }
                    }
                }
            }
        }
    }

    fn valid_access_token(&self) -> Option<Secret> {
        let token = self.tokens.access_token.as_ref()?;
        (unix_now() < self.tokens.renew_at).then(|| token.clone())
    }

    /// Obtains a new access token, answering a recent failure that needs an administrator from
    /// memory.
    async fn obtain(&mut self) -> Result<Secret> {
        self.recent_failure()?;
        let result = self.obtain_now().await;
        self.remember_outcome(&result);
        result
    }

    /// A failure that needs an administrator, answered from memory for a while: asking again
    /// with the same wrong password would only lock the account.
    fn recent_failure(&self) -> Result<()> {
        if let Some((when, error)) = &self.last_failure {
            if when.elapsed() < self.options.failure_backoff {
                log::debug!(
                    "OAuth {}: not asking again within {} s of: {error}",
                    self.endpoint,
                    self.options.failure_backoff.as_secs()
                );
                return Err(error.clone());
            }
        }
        Ok(())
    }

    fn remember_outcome<T>(&mut self, result: &Result<T>) {
        match result {
            Ok(_) => self.last_failure = None,
            Err(e) if !e.is_temporary() && e.kind() != ErrorKind::SignInRequired => {
                self.last_failure = Some((Instant::now(), e.clone()));
            }
            Err(_) => {}
        }
    }

    /// Checks the credentials as configured now with a fresh request to the token endpoint,
    /// never the cache alone: the password grant with the configured password, the
    /// client-credentials grant with the configured client secret; the device-code flow (and a
    /// password flow without a password) redeem the stored refresh token. Keeps the tokens it
    /// gets. Returns the new access token and what was checked, e.g. `"the password of
    /// alice@contoso.com"`.
    pub async fn verify_credentials(&mut self) -> Result<(Secret, String)> {
        self.save_if_unsaved()?;
        self.recent_failure()?;
        let user = self.identity.username.clone();
        let result = match (self.flow, self.password.is_some()) {
            (Flow::Password, true) => self
                .password_grant()
                .await
                .map(|t| (t, format!("the password of {user}"))),
            (Flow::ClientCredentials, _) => {
                let what = self.app_credential();
                self.client_credentials_grant().await.map(|t| (t, what))
            }
            _ => match self.tokens.refresh_token.clone() {
                Some(refresh) => match self.refresh_grant(&refresh).await {
                    Ok(t) => Ok((t, format!("the stored sign-in (refresh token) of {user}"))),
                    Err(r) => {
                        if r.answer.as_ref().is_some_and(|a| a.is_invalid_grant()) {
                            self.drop_refused_refresh_token(&r.error);
                        }
                        Err(r.error)
                    }
                },
                None => Err(self.sign_in_required()),
            },
        };
        self.remember_outcome(&result);
        result
    }

    async fn obtain_now(&mut self) -> Result<Secret> {
        if let Some(refresh_token) = self.tokens.refresh_token.clone() {
            match self.refresh_grant(&refresh_token).await {
                Ok(token) => return Ok(token),
                Err(r) if r.answer.as_ref().is_some_and(|a| a.is_invalid_grant()) => {
                    self.drop_refused_refresh_token(&r.error);
                    if self.flow == Flow::Password && self.password.is_some() {
                        log::info!(
                            "OAuth {}: signing in again with the configured password",
                            self.endpoint
                        );
                        return self.password_grant().await;
                    }
                    return Err(r.error);
                }
                Err(r) => return Err(r.error),
            }
        }
        match self.flow {
            Flow::Password => self.password_grant().await,
            Flow::ClientCredentials => self.client_credentials_grant().await,
            Flow::DeviceCode => Err(self.sign_in_required()),
        }
    }

    fn sign_in_required(&self) -> Error {
        Error::new(
            ErrorKind::SignInRequired,
            format!(
                "OAuth: no token for {} yet; flow \"{}\" needs an interactive sign-in",
                self.identity.username,
                flow_name(self.flow)
            ),
        )
        .with_fix(format!("run `{}`", self.options.sign_in_command))
    }

    fn drop_refused_refresh_token(&mut self, error: &Error) {
        log::warn!(
            "OAuth {}: the refresh token of {} was refused: {error}",
            self.endpoint,
            self.identity.username,
        );
        self.tokens = Tokens::default();
        if let Err(e) = self.save() {
            log::warn!("{e}");
        }
    }

    async fn refresh_grant(&mut self, refresh_token: &Secret) -> Result<Secret, Refusal> {
        let client_id = self.identity.client_id.clone();
        let secret = self.client_secret.clone();
        let scope = self.delegated_scope.clone();
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("client_id", client_id.as_str()),
            ("refresh_token", refresh_token.expose()),
            ("scope", scope.as_str()),
        ];
        if let Some(s) = &secret {
            form.push(("client_secret", s.expose()));
        }
        self.grant(&form, "refresh token").await
    }

    async fn client_credentials_grant(&mut self) -> Result<Secret> {
        let client_id = self.identity.client_id.clone();
        if let Some(certificate) = self.certificate.clone() {
            // The assertion's audience is the token endpoint: its tenant must be known first.
            self.ensure_tenant().await?;
            let now = unix_now();
            check_certificate_dates(&certificate, now)?;
            let assertion = certificate.assertion(&self.token_url, &client_id, now)?;
            let scope = self.app_scope.clone();
            let form = [
                ("grant_type", "client_credentials"),
                ("client_id", client_id.as_str()),
                ("client_assertion_type", CLIENT_ASSERTION_TYPE),
                ("client_assertion", assertion.expose()),
                ("scope", scope.as_str()),
            ];
            return self
                .grant(&form, "client certificate")
                .await
                .map_err(|r| r.error);
        }
        let secret = self.client_secret.clone().ok_or_else(|| {
            Error::config("oauth.client_secret", "missing for flow client_credentials")
        })?;
        let client_id = self.identity.client_id.clone();
        let scope = self.app_scope.clone();
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", client_id.as_str()),
            ("client_secret", secret.expose()),
            ("scope", scope.as_str()),
        ];
        self.grant(&form, "client credentials")
            .await
            .map_err(|r| r.error)
    }

    async fn password_grant(&mut self) -> Result<Secret> {
        let password = self.password.clone().ok_or_else(|| {
            Error::config(
                "password",
                "flow \"password\" needs the mailbox password and no refresh token is cached",
            )
            .with_fix("set password, password_env or password_file for this mailbox")
        })?;
        let client_id = self.identity.client_id.clone();
        let username = self.identity.username.clone();
        let secret = self.client_secret.clone();
        let scope = self.delegated_scope.clone();
        let mut form = vec![
            ("grant_type", "password"),
            ("client_id", client_id.as_str()),
            ("username", username.as_str()),
            ("password", password.expose()),
            ("scope", scope.as_str()),
        ];
        if let Some(s) = &secret {
            form.push(("client_secret", s.expose()));
        }
        self.grant(&form, "password").await.map_err(|r| r.error)
    }

    /// Posts a grant to the token endpoint and keeps the tokens it returns.
    async fn grant(&mut self, form: &[(&str, &str)], what: &str) -> Result<Secret, Refusal> {
        self.ensure_tenant().await?;
        let resp = http::post_form(&self.token_url, form, &self.http)
            .await
            .map_err(|e| self.network_error(e))?;
        if resp.status != 200 {
            let mut refusal = self.refusal(&resp);
            log::debug!(
                "OAuth {}: {what} grant for {} refused: {}",
                self.endpoint,
                self.identity.username,
                refusal.error
            );
            if let Some(credential) = self.refused_credential(refusal.error.kind(), what) {
                refusal.error = refusal.error.context(format!("{credential} was refused"));
            }
            return Err(refusal);
        }
        let Some(mut answer) = wire::token_answer(&resp.body) else {
            return Err(self.not_json(&resp, "OAuth token answer").into());
        };
        // The body holds the tokens: wipe it now that they are parsed.
        drop(zeroize::Zeroizing::new(resp.body));
        let Some(access) = answer.access_token.take().filter(|t| !t.is_empty()) else {
            return Err(Error::new(
                ErrorKind::Protocol,
                format!(
                    "token endpoint {}: the answer has no access_token",
                    self.endpoint
                ),
            )
            .into());
        };
        let access = Secret::new(access);
        if let Some(kind) = answer.token_type.as_deref() {
            if !kind.eq_ignore_ascii_case("bearer") {
                return Err(Error::new(
                    ErrorKind::Protocol,
                    format!(
                        "token endpoint {}: token_type {kind:?} instead of Bearer",
                        self.endpoint
                    ),
                )
                .into());
            }
        }
        let lifetime = answer.expires_in.unwrap_or(3600).max(1);
        let margin = self.options.renew_margin.as_secs().min(lifetime / 2);
        let now = unix_now();
        let rotated = match answer.refresh_token.take().filter(|t| !t.is_empty()) {
            Some(r) => {
                self.tokens.refresh_token = Some(Secret::new(r));
                self.tokens.refresh_renewed_at = now;
                true
            }
            None => false,
        };
        self.grants += 1;
        self.tokens.access_token = Some(access.clone());
        self.tokens.expires_at = now + lifetime;
        self.tokens.renew_at = now + lifetime - margin;
        log::info!(
            "OAuth {}: signed in as {} with the {what} ({} flow): access token valid for {lifetime} s{}",
            self.endpoint,
            self.identity.username,
            flow_name(self.flow),
            if rotated {
                ", new refresh token stored"
            } else {
                ""
            }
        );
        self.save()?;
        Ok(access)
    }

    /// Which configured credential an identity-platform refusal of a `what` grant is about,
    /// so that the report names it ("the password of alice@contoso.com was refused: …").
    fn refused_credential(&self, kind: ErrorKind, what: &str) -> Option<String> {
        use ErrorKind as K;
        let user = &self.identity.username;
        match kind {
            K::InvalidClientSecret => Some(format!(
                "the client secret of application {}",
                self.identity.client_id
            )),
            K::ClientCertificateRejected
            | K::ClientAssertionExpired
            | K::ClientAssertionReplayed => Some(self.app_credential()),
            K::InvalidCredentials | K::PasswordExpired if what == "password" => {
                Some(format!("the password of {user}"))
            }
            K::GrantRevoked | K::RefreshTokenExpired | K::InvalidRefreshToken => {
                Some(format!("the stored sign-in (refresh token) of {user}"))
            }
            k if k.is_identity_platform() && what == "password" => Some(format!(
                "the sign-in of {user} with the configured password"
            )),
            k if k.is_identity_platform() && what == "client credentials" => Some(format!(
                "the sign-in of application {} with the configured client secret",
                self.identity.client_id
            )),
            k if k.is_identity_platform() && what == "client certificate" => Some(format!(
                "the sign-in of application {} with the configured certificate",
                self.identity.client_id
            )),
            _ => None,
        }
    }

    fn refusal(&self, resp: &http::Response) -> Refusal {
        match wire::error_answer(&resp.body) {
            Some(answer) => {
                let again = self.sign_in_again();
                Refusal {
                    error: errors::map_error(&self.endpoint, resp.status, &answer, &again),
                    answer: Some(answer),
                }
            }
            None if resp.status >= 500 || resp.status == 429 => Error::new(
                ErrorKind::ServerUnavailable,
                format!(
                    "token endpoint {}: temporarily unavailable (HTTP {})",
                    self.endpoint, resp.status
                ),
            )
            .with_fix("nothing to change: the agent tries again later")
            .into(),
            None => self.not_json(resp, "OAuth answer").into(),
        }
    }

    fn not_json(&self, resp: &http::Response, what: &str) -> Error {
        // The body is not quoted: whatever answered may echo the request.
        Error::new(
            ErrorKind::Protocol,
            format!(
                "token endpoint {}: HTTP {} with a body that is not an {what} ({}, {} bytes)",
                self.endpoint,
                resp.status,
                resp.header("content-type").unwrap_or("no content type"),
                resp.body.len()
            ),
        )
        .with_fix("check oauth.authority (and oauth.proxy): it must be the Microsoft identity platform, e.g. https://login.microsoftonline.com")
    }

    fn network_error(&self, e: Error) -> Error {
        let e = e.context(format!("token endpoint {}", self.endpoint));
        match e.kind() {
            ErrorKind::Connect | ErrorKind::Timeout | ErrorKind::ConnectionClosed => {
                e.with_fix(unreachable_fix(
                    &self.endpoint,
                    &self.authority_origin,
                    self.http.proxy.as_deref(),
                ))
            }
            _ => e,
        }
    }

    fn sign_in_again(&self) -> String {
        match self.flow {
            Flow::Password => {
                "sign in again: check the mailbox password (re-enter it if it was changed)"
                    .to_string()
            }
            Flow::DeviceCode => format!("sign in again: run `{}`", self.options.sign_in_command),
            Flow::ClientCredentials if self.certificate.is_some() => {
                "check the certificate in client_certificate_file".to_string()
            }
            Flow::ClientCredentials => "check the client secret".to_string(),
        }
    }

    fn save(&mut self) -> Result<()> {
        let Some(path) = self.options.cache_path.clone() else {
            return Ok(());
        };
        let binding = match self.binding.clone() {
            Some(b) => b,
            None => {
                let b = Binding::new(self.secrets())?;
                self.binding = Some(b.clone());
                b
            }
        };
        match cache::store(&path, &self.identity, &binding, &self.tokens) {
            Ok(()) => {
                self.unsaved = false;
                Ok(())
            }
            Err(e) => {
                self.unsaved = true;
                Err(e)
            }
        }
    }

    fn save_if_unsaved(&mut self) -> Result<()> {
        if self.unsaved {
            self.save()?;
        }
        Ok(())
    }
}

/// A certificate outside its validity is refused here, before the identity platform does.
fn check_certificate_dates(c: &cert::ClientCertificate, now: u64) -> Result<()> {
    let fix =
        "create a new certificate (e.g. `openssl req -x509 -newkey rsa:2048 -nodes -days 365 \
               -subj /CN=psa-mail-agent -keyout key.pem -out cert.pem`), upload cert.pem under App \
               registration > Certificates & secrets > Certificates, and point \
               client_certificate_file to the concatenation of cert.pem and key.pem";
    if now >= c.not_after() {
        return Err(Error::new(
            ErrorKind::ClientCertificateExpired,
            format!(
                "the client certificate {} (thumbprint {}) expired on {}",
                c.path().display(),
                c.thumbprint(),
                utc_text(c.not_after())
            ),
        )
        .with_fix(fix));
    }
    if now + 300 < c.not_before() {
        return Err(Error::new(
            ErrorKind::ClientCertificateExpired,
            format!(
                "the client certificate {} (thumbprint {}) is not valid before {}",
                c.path().display(),
                c.thumbprint(),
                utc_text(c.not_before())
            ),
        )
        .with_fix("check this machine's clock (NTP), or use a certificate valid now"));
    }
    Ok(())
}

/// Finds the tenant (Directory ID) that owns the domain of `address` at the identity platform
/// of `oauth` (its cloud's authority, or `oauth.authority`), without a token provider: e.g. to
/// show it while a mailbox is set up. `timeout` limits the request; `ca_file` adds trusted CAs.
pub async fn discover_tenant(
    oauth: &OAuth,
    address: &str,
    timeout: Duration,
    ca_file: Option<PathBuf>,
) -> Result<TenantInfo> {
    let authority = oauth.authority.trim().trim_end_matches('/').to_string();
    let url = Url::parse(&authority)
        .map_err(|e| Error::config("oauth.authority", e.message().to_string()))?;
    url.require_secure_transport("oauth.authority")?;
    let domain = discovery::domain_of(address).ok_or_else(|| {
        Error::config(
            "email",
            format!(
                "{:?} has no domain to find the tenant from",
                crate::json::shorten(address)
            ),
        )
    })?;
    let http = HttpOptions {
        timeout,
        ca_file,
        proxy: oauth.proxy.clone(),
        ..HttpOptions::default()
    };
    let origin = if authority == oauth.cloud.authority() {
        format!(
            "the authority of oauth.cloud \"{}\" ({authority})",
            oauth.cloud.name()
        )
    } else {
        format!("oauth.authority {authority}")
    };
    discovery::discover(&authority, &domain, &http, &url.authority(), &origin).await
}

/// The secrets `flow` signs in with: what a token cache is bound to.
fn secret_set<'a>(
    flow: Flow,
    password: Option<&'a Secret>,
    client_secret: Option<&'a Secret>,
    certificate: Option<&'a Secret>,
) -> Secrets<'a> {
    Secrets {
        password: password.filter(|_| flow == Flow::Password),
        client_secret,
        certificate,
    }
}

#[cfg(test)]
mod tests;

/// Fuzzing entry (not part of the API): `data` as the token endpoint's answer, through the HTTP
/// response parser and every JSON shape the flows read (token, device code, Microsoft error with
/// its AADSTS mapping). Returns the error message when the answer is an error.
#[doc(hidden)]
pub fn fuzz_token_endpoint_answer(data: &[u8]) -> Option<String> {
    let body = match http::fuzz_response(data) {
        Some(r) => r.body,
        None => data.to_vec(),
    };
    if let Some(t) = wire::token_answer(&body) {
        let _ = (
            t.access_token.is_some(),
            t.expires_in,
            t.token_type.is_some(),
        );
    }
    if let Some(d) = wire::device_code_answer(&body) {
        let _ = (d.device_code.is_some(), d.interval, d.message.is_some());
    }
    let answer = wire::error_answer(&body)?;
    let _ = answer.is_invalid_grant();
    let e = errors::map_error("login.example", 400, &answer, "sign in again");
    Some(e.message().to_string())
}
