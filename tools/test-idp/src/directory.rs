//! The fake Entra ID directory: tenant, app registrations, users and scope rules.

/// Directory (tenant) id accepted in URLs; the domain works too, as at Microsoft.
pub const TENANT: &str = "contoso-tenant";
/// The users' domain.
pub const DOMAIN: &str = "contoso.test";
/// The tenant's GUID (what discovery finds for the domain); accepted in URLs too.
pub const TENANT_GUID: &str = "5c8a3e1f-7b2d-4f60-9a41-0d6e2b8c7f35";

/// How an app registration is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum App {
    /// "Allow public client flows": yes; no secret.
    Public,
    /// Public client flows off and no secret: the password grant fails with 7000218.
    NoPublic,
    /// Confidential client with a valid secret (client credentials, also ROPC with the secret).
    Confidential,
    /// Confidential client whose only secret expired (7000222).
    ExpiredSecret,
    /// Public client without admin consent (65001).
    NoConsent,
}

/// The secret of `app-confidential`.
pub const CONFIDENTIAL_SECRET: &str = "s3cret-app";
/// The (expired) secret of `app-expiredsecret`.
pub const EXPIRED_SECRET: &str = "old-s3cret";

/// Looks up an app registration by client id.
pub fn app(client_id: &str) -> Option<App> {
    match client_id {
        "app-public" => Some(App::Public),
        "app-nopublic" => Some(App::NoPublic),
        // A second confidential app (same secret) for tests that change an app's settings
        // (Graph roles, access policies) without disturbing tests that use the first.
        "app-confidential" | "app-confidential-b" => Some(App::Confidential),
        "app-expiredsecret" => Some(App::ExpiredSecret),
        "app-noconsent" => Some(App::NoConsent),
        _ => None,
    }
}

/// Checks the client's credentials for a grant; `public_flow` says whether the grant is one a
/// public client may use (password, device code, refresh). Returns the AADSTS code on failure.
pub fn authenticate_client(app: App, secret: Option<&str>, public_flow: bool) -> Result<(), u32> {
    match (app, secret) {
        (App::Confidential, Some(s)) if s == CONFIDENTIAL_SECRET => Ok(()),
        (App::ExpiredSecret, Some(s)) if s == EXPIRED_SECRET => Err(7000222),
        (_, Some(_)) => Err(7000215),
        (App::Public | App::NoConsent, None) if public_flow => Ok(()),
        (_, None) => Err(7000218),
    }
}

/// Checks the tenant segment of the URL.
pub fn check_tenant(tenant: &str) -> Result<(), u32> {
    let t = tenant.to_ascii_lowercase();
    if t == TENANT || t == DOMAIN || t == TENANT_GUID {
        Ok(())
    } else if t == "common" || t == "organizations" {
        Err(50194)
    } else {
        Err(90002)
    }
}

/// Whether `user` is an account of the directory; returns it normalised (lowercase).
pub fn find_user(user: &str) -> Result<String, u32> {
    let u = user.trim().to_ascii_lowercase();
    match u.split_once('@') {
        Some((local, domain)) if !local.is_empty() && domain == DOMAIN => Ok(u),
        _ => Err(50034),
    }
}

/// Signs `user` in with `password` (resource owner password grant); returns the principal.
/// The local part's prefix selects the account's condition: `locked-`, `disabled-`, `expired-`,
/// `mfa-`, `mfareg-`, `blocked-`, `secdefaults-`.
pub fn sign_in(user: &str, password: &str, directory_password: &str) -> Result<String, u32> {
    let u = find_user(user)?;
    let local = u.split('@').next().unwrap_or("");
    if local.starts_with("locked-") {
        return Err(50053);
    }
    if password != directory_password {
        return Err(50126);
    }
    account_condition(&u)?;
    Ok(u)
}

/// Conditions that stop a signed-in account from getting tokens without interaction.
pub fn account_condition(user: &str) -> Result<(), u32> {
    let local = user.split('@').next().unwrap_or("");
    let rules: &[(&str, u32)] = &[
        ("disabled-", 50057),
        ("expired-", 50055),
        ("mfareg-", 50079),
        ("mfa-", 50076),
        ("blocked-", 53003),
        ("secdefaults-", 530035),
    ];
    for (prefix, code) in rules {
        if local.starts_with(prefix) {
            return Err(*code);
        }
    }
    Ok(())
}

/// What a granted scope allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The `scope` value of the answer.
    pub scope: String,
    /// Whether tokens of this grant open IMAP.
    pub imap: bool,
    /// Whether a refresh token is issued (`offline_access` asked for).
    pub offline: bool,
}

const OIDC: &[&str] = &["openid", "profile", "email", "offline_access"];
const EXCHANGE: &[&str] = &[
    "https://outlook.office.com",
    "https://outlook.office365.com",
    // The national clouds' Exchange Online (oauth.cloud "usgov", "china").
    "https://outlook.office365.us",
    "https://partner.outlook.cn",
];

fn resource_of(item: &str) -> Option<(String, String)> {
    let rest = item.strip_prefix("https://")?;
    let (host, perm) = rest.split_once('/')?;
    Some((
        format!("https://{}", host.to_ascii_lowercase()),
        perm.to_string(),
    ))
}

/// Validates a delegated (user) scope request.
pub fn delegated_scope(scope: &str) -> Result<Grant, u32> {
    let items: Vec<&str> = scope.split_whitespace().collect();
    if items.is_empty() {
        return Err(70011);
    }
    let offline = items
        .iter()
        .any(|i| i.eq_ignore_ascii_case("offline_access"));
    let mut resources = Vec::new();
    let mut granted = Vec::new();
    let mut imap = false;
    for item in &items {
        if OIDC.iter().any(|o| o.eq_ignore_ascii_case(item)) {
            continue;
        }
        let Some((res, perm)) = resource_of(item) else {
            return Err(70011);
        };
        if !resources.contains(&res) {
            resources.push(res.clone());
        }
        if EXCHANGE.contains(&res.as_str())
            && (perm.eq_ignore_ascii_case("IMAP.AccessAsUser.All") || perm == ".default")
        {
            imap = true;
            granted.push("https://outlook.office.com/IMAP.AccessAsUser.All".to_string());
        } else {
            granted.push(item.to_string());
        }
    }
    if resources.len() > 1 {
        return Err(28000);
    }
    if !imap {
        return Err(70011);
    }
    granted.dedup();
    Ok(Grant {
        scope: granted.join(" "),
        imap,
        offline,
    })
}

/// Validates an application (client credentials) scope request.
pub fn app_scope(scope: &str) -> Result<Grant, u32> {
    let items: Vec<&str> = scope.split_whitespace().collect();
    if items.is_empty() {
        return Err(70011);
    }
    if items.len() > 1 {
        let distinct: Vec<_> = items.iter().filter_map(|i| resource_of(i)).collect();
        return Err(if distinct.len() > 1 { 28000 } else { 1002012 });
    }
    let item = items[0];
    match resource_of(item) {
        Some((res, perm)) if perm == ".default" => Ok(Grant {
            scope: format!("{res}/.default"),
            // A .default for another API (Graph, ...) is issued but does not open IMAP.
            imap: EXCHANGE.contains(&res.as_str()),
            offline: false,
        }),
        Some(_) => Err(1002012),
        None => Err(70011),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants() {
        assert_eq!(check_tenant("contoso-tenant"), Ok(()));
        assert_eq!(check_tenant("CONTOSO.TEST"), Ok(()));
        assert_eq!(check_tenant("common"), Err(50194));
        assert_eq!(check_tenant("fabrikam"), Err(90002));
    }

    #[test]
    fn users() {
        let pw = "pw";
        assert_eq!(
            sign_in("Alice@Contoso.test", pw, pw),
            Ok("alice@contoso.test".into())
        );
        assert_eq!(sign_in("alice@contoso.test", "bad", pw), Err(50126));
        assert_eq!(sign_in("alice@fabrikam.com", pw, pw), Err(50034));
        assert_eq!(sign_in("locked-a@contoso.test", pw, pw), Err(50053));
        assert_eq!(sign_in("locked-a@contoso.test", "bad", pw), Err(50053));
        assert_eq!(sign_in("disabled-a@contoso.test", "bad", pw), Err(50126));
        assert_eq!(sign_in("disabled-a@contoso.test", pw, pw), Err(50057));
        assert_eq!(sign_in("expired-a@contoso.test", pw, pw), Err(50055));
        assert_eq!(sign_in("mfa-a@contoso.test", pw, pw), Err(50076));
        assert_eq!(sign_in("mfareg-a@contoso.test", pw, pw), Err(50079));
        assert_eq!(sign_in("blocked-a@contoso.test", pw, pw), Err(53003));
    }

    #[test]
    fn clients() {
        assert_eq!(authenticate_client(App::Public, None, true), Ok(()));
        assert_eq!(authenticate_client(App::Public, None, false), Err(7000218));
        assert_eq!(authenticate_client(App::NoPublic, None, true), Err(7000218));
        assert_eq!(
            authenticate_client(App::Confidential, Some("s3cret-app"), false),
            Ok(())
        );
        assert_eq!(
            authenticate_client(App::Confidential, Some("nope"), false),
            Err(7000215)
        );
        assert_eq!(
            authenticate_client(App::Confidential, None, false),
            Err(7000218)
        );
        assert_eq!(
            authenticate_client(App::ExpiredSecret, Some("old-s3cret"), false),
            Err(7000222)
        );
    }

    #[test]
    fn scopes() {
        let g = delegated_scope("https://outlook.office.com/IMAP.AccessAsUser.All offline_access")
            .unwrap();
        assert!(g.imap && g.offline);
        assert_eq!(g.scope, "https://outlook.office.com/IMAP.AccessAsUser.All");
        assert!(
            !delegated_scope("https://outlook.office.com/IMAP.AccessAsUser.All")
                .unwrap()
                .offline
        );
        assert_eq!(delegated_scope(""), Err(70011));
        assert_eq!(delegated_scope("offline_access"), Err(70011));
        assert_eq!(
            delegated_scope("https://graph.microsoft.com/Mail.Read"),
            Err(70011)
        );
        assert_eq!(
            delegated_scope("https://outlook.office.com/IMAP.AccessAsUser.All https://graph.microsoft.com/User.Read"),
            Err(28000)
        );
        assert!(
            app_scope("https://outlook.office365.com/.default")
                .unwrap()
                .imap
        );
        assert!(
            !app_scope("https://graph.microsoft.com/.default")
                .unwrap()
                .imap
        );
        assert_eq!(
            app_scope("https://outlook.office365.com/IMAP.AccessAsApp"),
            Err(1002012)
        );
        assert_eq!(app_scope(""), Err(70011));
    }
}
