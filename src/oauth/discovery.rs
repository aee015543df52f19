//! The tenant found from the mailbox's address: Microsoft publishes an OpenID configuration for
//! every domain a tenant verified, at `{authority}/{domain}/v2.0/.well-known/openid-configuration`;
//! its `issuer` (`https://login.microsoftonline.com/{tenant id}/v2.0`) holds the tenant's GUID.
//! A domain no tenant owns is answered with AADSTS90002.
//!
//! What was found is cached beside the mailbox's state (`NAME.tenant.json`, written atomically
//! like the UID state) so that a restart does not ask again.

use crate::error::{Error, ErrorKind, Result};
use crate::http::{self, HttpOptions};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The tenant a domain belongs to, as discovery found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantInfo {
    /// The Directory (tenant) ID, a GUID.
    pub tenant_id: String,
    /// The domain it was found from (of the mailbox's address).
    pub domain: String,
    /// The `issuer` of the OpenID configuration.
    pub issuer: String,
    /// The OpenID configuration's URL.
    pub url: String,
    /// Unix seconds of the discovery.
    pub discovered_at: u64,
    /// Read from the cache file rather than asked just now.
    pub from_cache: bool,
}

impl TenantInfo {
    /// One line for `test` and logs.
    pub fn describe(&self) -> String {
        format!(
            "{} belongs to tenant {} (Directory ID, from {}{})",
            self.domain,
            self.tenant_id,
            self.url,
            if self.from_cache { ", cached" } else { "" }
        )
    }
}

/// The domain of `address` (`user@contoso.com` → `contoso.com`), lower-cased; `None` when it
/// has none or it is not a plausible DNS name (it becomes a URL path segment).
pub(crate) fn domain_of(address: &str) -> Option<String> {
    let (_, domain) = address.trim().rsplit_once('@')?;
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let ok = domain.contains('.')
        && domain.len() <= 253
        && domain
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    ok.then_some(domain)
}

/// The URL of the OpenID configuration of `domain` under `authority`.
pub(crate) fn configuration_url(authority: &str, domain: &str) -> String {
    format!("{authority}/{domain}/v2.0/.well-known/openid-configuration")
}

#[derive(Deserialize)]
struct Configuration {
    issuer: Option<String>,
}

/// The tenant GUID in an issuer `https://host/{tid}/v2.0` (or the v1 form `https://sts.windows.net/{tid}/`).
pub(crate) fn tenant_of_issuer(issuer: &str) -> Option<String> {
    let rest = issuer
        .strip_prefix("https://")
        .or_else(|| issuer.strip_prefix("http://"))?;
    let mut parts = rest.split('/');
    let _host = parts.next()?;
    let tid = parts.next()?;
    is_guid(tid).then(|| tid.to_ascii_lowercase())
}

/// Whether `s` is a GUID in its 8-4-4-4-12 hex form.
pub(crate) fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Asks the identity platform at `authority` which tenant `domain` belongs to. `endpoint` names
/// the host in messages; `origin` says where the authority came from (for the fix).
pub(crate) async fn discover(
    authority: &str,
    domain: &str,
    http_options: &HttpOptions,
    endpoint: &str,
    origin: &str,
) -> Result<TenantInfo> {
    let url = configuration_url(authority, domain);
    let resp = http::request(
        "GET",
        &url,
        &[("Accept", "application/json")],
        &[],
        http_options,
    )
    .await
    .map_err(|e| {
        let e = e.context(format!("tenant discovery at {endpoint}"));
        match e.kind() {
            ErrorKind::Timeout | ErrorKind::ConnectionClosed | ErrorKind::Connect
                if e.fix().is_none() =>
            {
                e.with_fix(format!(
                    "check that this machine reaches {endpoint} ({origin}; firewall, DNS, \
                     oauth.proxy), or set oauth.directory_id to the Directory (tenant) ID so \
                     that no discovery is needed"
                ))
            }
            _ => e,
        }
    })?;
    if resp.status != 200 {
        if let Some(answer) = super::wire::error_answer(&resp.body) {
            let mut e = super::errors::map_error(endpoint, resp.status, &answer, "");
            if e.kind() == ErrorKind::TenantNotFound {
                e = Error::new(
                    ErrorKind::TenantNotFound,
                    format!(
                        "tenant discovery at {endpoint}: no Microsoft Entra tenant owns the domain \
                         {domain} ({})",
                        answer
                            .description
                            .clone()
                            .unwrap_or_else(|| "AADSTS90002".into())
                    ),
                )
                .with_fix(format!(
                    "the domain is taken from the mailbox's address: check email/username for a \
                     typo; if {domain} is not a verified domain of your tenant (Entra ID > Domain \
                     names), set oauth.directory_id to the Directory (tenant) ID from the app \
                     registration's Overview; for a US Government or China tenant set \
                     oauth.cloud to \"usgov\" or \"china\""
                ));
            }
            return Err(e);
        }
        return Err(Error::new(
            if resp.status >= 500 || resp.status == 429 {
                ErrorKind::ServerUnavailable
            } else {
                ErrorKind::Protocol
            },
            format!(
                "tenant discovery at {endpoint}: HTTP {} for {url}",
                resp.status
            ),
        )
        .with_fix(format!(
            "check oauth.authority/oauth.cloud ({origin}); or set oauth.directory_id to the \
             Directory (tenant) ID so that no discovery is needed"
        )));
    }
    let text = std::str::from_utf8(&resp.body).ok();
    let config = text.and_then(|t| {
        let mut scratch = vec![0u8; t.len()];
        serde_json_core::from_str_escaped::<Configuration>(t, &mut scratch)
            .ok()
            .map(|(c, _)| c)
    });
    let issuer = config.and_then(|c| c.issuer).unwrap_or_default();
    let Some(tenant_id) = tenant_of_issuer(&issuer) else {
        return Err(Error::new(
            ErrorKind::Protocol,
            format!(
                "tenant discovery at {endpoint}: the OpenID configuration of {domain} has no \
                 issuer with a tenant ID ({})",
                crate::json::shorten(&issuer)
            ),
        )
        .with_fix(format!(
            "check oauth.authority/oauth.cloud ({origin}): it must be the Microsoft identity \
             platform; or set oauth.directory_id"
        )));
    };
    Ok(TenantInfo {
        tenant_id,
        domain: domain.to_string(),
        issuer,
        url,
        discovered_at: super::unix_now(),
        from_cache: false,
    })
}

#[derive(Serialize, Deserialize)]
struct CacheFile {
    version: u32,
    authority: String,
    domain: String,
    tenant_id: String,
    issuer: String,
    url: String,
    discovered_at: u64,
}

/// The tenant cached at `path` for `domain` under `authority`; `None` when absent, damaged or
/// written for another domain or authority.
pub(crate) fn load(path: &Path, authority: &str, domain: &str) -> Option<TenantInfo> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut scratch = vec![0u8; text.len()];
    let (file, _) = serde_json_core::from_str_escaped::<CacheFile>(&text, &mut scratch).ok()?;
    let ok = file.version == 1
        && file.authority == authority
        && file.domain.eq_ignore_ascii_case(domain)
        && is_guid(&file.tenant_id);
    if !ok {
        log::info!(
            "tenant cache {}: written for another domain or authority; discovering again",
            path.display()
        );
        return None;
    }
    Some(TenantInfo {
        tenant_id: file.tenant_id,
        domain: file.domain,
        issuer: file.issuer,
        url: file.url,
        discovered_at: file.discovered_at,
        from_cache: true,
    })
}

/// Writes `info` for `authority` to `path` atomically (private to the agent's user).
pub(crate) fn store(path: &Path, authority: &str, info: &TenantInfo) -> Result<()> {
    let file = CacheFile {
        version: 1,
        authority: authority.to_string(),
        domain: info.domain.clone(),
        tenant_id: info.tenant_id.clone(),
        issuer: info.issuer.clone(),
        url: info.url.clone(),
        discovered_at: info.discovered_at,
    };
    crate::state::write_atomic(path, crate::state::to_json(&file).as_bytes()).map_err(|e| {
        Error::new(
            ErrorKind::Io,
            format!("tenant cache {}: {}", path.display(), e.message()),
        )
        .with_fix("make state_dir writable by the agent's user")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_and_issuers() {
        assert_eq!(
            domain_of("Alice@Contoso.COM").as_deref(),
            Some("contoso.com")
        );
        assert_eq!(domain_of("alice"), None);
        assert_eq!(domain_of("a@localhost"), None);
        assert_eq!(domain_of("a@ex/ample.com"), None);
        assert_eq!(
            tenant_of_issuer(
                "https://login.microsoftonline.com/9188040D-6c67-4c5b-b112-36a304b66dad/v2.0"
            )
            .as_deref(),
            Some("9188040d-6c67-4c5b-b112-36a304b66dad")
        );
        assert_eq!(
            tenant_of_issuer("https://sts.windows.net/9188040d-6c67-4c5b-b112-36a304b66dad/")
                .as_deref(),
            Some("9188040d-6c67-4c5b-b112-36a304b66dad")
        );
        assert_eq!(
            tenant_of_issuer("https://login.microsoftonline.com/{tenantid}/v2.0"),
            None
        );
        assert!(!is_guid("contoso-tenant"));
    }

    #[test]
    fn cache_round_trip_and_mismatch() {
        let dir = std::env::temp_dir().join(format!("pma-tenant-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.tenant.json");
        let info = TenantInfo {
            tenant_id: "9188040d-6c67-4c5b-b112-36a304b66dad".into(),
            domain: "contoso.com".into(),
            issuer: "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0"
                .into(),
            url: "u".into(),
            discovered_at: 5,
            from_cache: false,
        };
        store(&path, "https://a", &info).unwrap();
        let back = load(&path, "https://a", "CONTOSO.com").unwrap();
        assert_eq!(back.tenant_id, info.tenant_id);
        assert!(back.from_cache);
        assert!(load(&path, "https://b", "contoso.com").is_none());
        assert!(load(&path, "https://a", "fabrikam.com").is_none());
        std::fs::write(&path, "{").unwrap();
        assert!(load(&path, "https://a", "contoso.com").is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
