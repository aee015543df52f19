//! Microsoft Graph tokens: delegated Graph scopes (`https://graph.microsoft.com/Mail.ReadWrite.Shared
//! offline_access`), app-only `https://graph.microsoft.com/.default` with application roles, the
//! apps' Graph permissions (consent) and the claims introspection the Graph stand-in
//! (tools/test-graph) asks for. Kept apart from the IMAP rules so both evolve independently.

use crate::directory::Grant;
use crate::util::json_str;
use std::collections::HashMap;

/// Graph's resource URIs (global service and national clouds).
pub const GRAPH_HOSTS: &[&str] = &[
    "https://graph.microsoft.com",
    "https://graph.microsoft.us",
    "https://dod-graph.microsoft.us",
    "https://microsoftgraph.chinacloudapi.cn",
];

/// Delegated Graph permissions the directory knows (any app may ask for them unless a test
/// restricted its consent with `graph_consent`).
pub const DELEGATED: &[&str] = &[
    "Mail.Read",
    "Mail.ReadBasic",
    "Mail.ReadWrite",
    "Mail.Read.Shared",
    "Mail.ReadWrite.Shared",
    "Mail.Send",
    "Mail.Send.Shared",
    "MailboxSettings.Read",
    "User.Read",
];

/// What a `.default` of Graph grants a delegated client: the permissions consented for the app.
const DELEGATED_DEFAULT: &[&str] = &["Mail.ReadWrite", "Mail.ReadWrite.Shared", "User.Read"];

/// Application permissions (roles) an app has on Graph unless a test changed them.
const DEFAULT_ROLES: &[&str] = &["Mail.ReadWrite"];

/// The Graph resource of a scope item (`https://graph.microsoft.com/Mail.Read` →
/// (`https://graph.microsoft.com`, `Mail.Read`)), or `None` for another resource.
fn graph_item(item: &str) -> Option<(String, String)> {
    let rest = item.strip_prefix("https://")?;
    let (host, perm) = rest.split_once('/')?;
    let res = format!("https://{}", host.to_ascii_lowercase());
    GRAPH_HOSTS
        .contains(&res.as_str())
        .then(|| (res, perm.to_string()))
}

/// Whether a scope request names Graph at all (then Graph's rules apply to it).
pub fn mentions_graph(scope: &str) -> bool {
    scope.split_whitespace().any(|i| graph_item(i).is_some())
}

/// The audience of tokens issued for a granted scope string.
pub fn audience(scope: &str) -> &'static str {
    scope
        .split_whitespace()
        .find_map(|i| graph_item(i).map(|(r, _)| r))
        .and_then(|r| GRAPH_HOSTS.iter().find(|h| **h == r).copied())
        .unwrap_or("https://outlook.office.com")
}

/// The Graph state of the directory: which permissions tests took away from which app.
#[derive(Debug, Default)]
pub struct GraphDirectory {
    /// Delegated permissions consented per client id (absent: every known permission).
    consent: HashMap<String, Vec<String>>,
    /// Application permissions per client id (absent: `Mail.ReadWrite`).
    roles: HashMap<String, Vec<String>>,
}

impl GraphDirectory {
    /// Validates a delegated scope request that names Graph. Errors are AADSTS codes: 28000
    /// (Graph and another resource), 70011 (unknown permission), 65001 (not consented).
    pub fn delegated_scope(&self, client_id: &str, scope: &str) -> Result<Grant, u32> {
        let mut offline = false;
        let mut resource: Option<String> = None;
        let mut granted: Vec<String> = Vec::new();
        for item in scope.split_whitespace() {
            if item.eq_ignore_ascii_case("offline_access") {
                offline = true;
                continue;
            }
            if ["openid", "profile", "email"]
                .iter()
                .any(|o| o.eq_ignore_ascii_case(item))
            {
                continue;
            }
            let Some((res, perm)) = graph_item(item) else {
                // Graph and another resource in one request.
                return Err(if item.starts_with("https://") {
                    28000
                } else {
                    70011
                });
            };
            if resource.as_ref().is_some_and(|r| *r != res) {
                return Err(28000);
            }
            let perms: Vec<&str> = if perm == ".default" {
                DELEGATED_DEFAULT.to_vec()
            } else {
                match DELEGATED.iter().find(|p| p.eq_ignore_ascii_case(&perm)) {
                    Some(p) => vec![*p],
                    None => return Err(70011),
                }
            };
            for p in perms {
                if let Some(allowed) = self.consent.get(client_id) {
                    if !allowed.iter().any(|a| a.eq_ignore_ascii_case(p)) {
                        return Err(65001);
                    }
                }
                let full = format!("{res}/{p}");
                if !granted.contains(&full) {
                    granted.push(full);
                }
            }
            resource = Some(res);
        }
        if granted.is_empty() {
            return Err(70011);
        }
        Ok(Grant {
            scope: granted.join(" "),
            imap: false,
            offline,
        })
    }

    /// The `roles` claim of an app-only token for `scope` (empty for delegated tokens and for
    /// other resources).
    pub fn roles_for(&self, principal: &str, client_id: &str, scope: &str) -> Vec<String> {
        if principal.contains('@') || !mentions_graph(scope) {
            return Vec::new();
        }
        match self.roles.get(client_id) {
            Some(r) => r.clone(),
            None => DEFAULT_ROLES.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Control commands: `graph_consent?client_id=C&scopes=A,B` (delegated permissions the app
    /// keeps; `scopes=*` restores all), `graph_roles?client_id=C&roles=A,B` (application
    /// permissions of its next tokens; `roles=*` restores Mail.ReadWrite). `None`: not ours.
    pub fn control(&mut self, cmd: &str, p: &[(String, String)]) -> Option<Result<(), String>> {
        let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let list = |v: &str| -> Vec<String> {
            v.split([',', ' '])
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        };
        let (key, map) = match cmd {
            "graph_consent" => ("scopes", &mut self.consent),
            "graph_roles" => ("roles", &mut self.roles),
            _ => return None,
        };
        let Some(client) = get("client_id") else {
            return Some(Err(format!("{cmd} needs client_id=")));
        };
        let Some(value) = get(key) else {
            return Some(Err(format!(
                "{cmd} needs {key}= (comma-separated, * for the default)"
            )));
        };
        if value == "*" {
            map.remove(client);
        } else {
            map.insert(client.to_string(), list(value));
        }
        Some(Ok(()))
    }
}

/// The claims answer of `POST /introspect/claims` for a live token.
pub fn claims_json(
    principal: &str,
    client_id: &str,
    scope: &str,
    roles: &[String],
    exp: u64,
) -> String {
    let app = !principal.contains('@');
    // Short permission names, as in the token's scp claim.
    let scp: Vec<&str> = if app {
        Vec::new()
    } else {
        scope
            .split_whitespace()
            .map(|s| s.rsplit('/').next().unwrap_or(s))
            .collect()
    };
    let roles: Vec<String> = roles.iter().map(|r| json_str(r)).collect();
    format!(
        "{{\"active\":true,\"aud\":{},\"sub\":{},\"idtyp\":{},\"appid\":{},\"scp\":{},\"roles\":[{}],\"exp\":{exp}}}",
        json_str(audience(scope)),
        json_str(principal),
        json_str(if app { "app" } else { "user" }),
        json_str(client_id),
        json_str(&scp.join(" ")),
        roles.join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delegated_graph_scopes() {
        let d = GraphDirectory::default();
        let g = d
            .delegated_scope(
                "app-public",
                "https://graph.microsoft.com/Mail.ReadWrite.Shared offline_access",
            )
            .unwrap();
        assert_eq!(g.scope, "https://graph.microsoft.com/Mail.ReadWrite.Shared");
        assert!(g.offline && !g.imap);
        assert_eq!(audience(&g.scope), "https://graph.microsoft.com");
        assert_eq!(
            d.delegated_scope(
                "app-public",
                "https://graph.microsoft.com/Mail.Read https://outlook.office.com/IMAP.AccessAsUser.All"
            ),
            Err(28000)
        );
        assert_eq!(
            d.delegated_scope("app-public", "https://graph.microsoft.com/Nope.All"),
            Err(70011)
        );
        assert!(d
            .delegated_scope("app-public", "https://graph.microsoft.com/.default")
            .unwrap()
            .scope
            .contains("Mail.ReadWrite.Shared"));
    }

    #[test]
    fn consent_and_roles_follow_the_control_api() {
        let mut d = GraphDirectory::default();
        let p = |k: &str, v: &str| {
            vec![
                ("client_id".to_string(), "app-public".to_string()),
                (k.to_string(), v.to_string()),
            ]
        };
        d.control("graph_consent", &p("scopes", "Mail.Read"))
            .unwrap()
            .unwrap();
        assert_eq!(
            d.delegated_scope(
                "app-public",
                "https://graph.microsoft.com/Mail.ReadWrite.Shared"
            ),
            Err(65001)
        );
        assert!(d
            .delegated_scope("app-public", "https://graph.microsoft.com/Mail.Read")
            .is_ok());
        let scope = "https://graph.microsoft.com/.default";
        assert_eq!(
            d.roles_for("app-public", "app-public", scope),
            vec!["Mail.ReadWrite".to_string()]
        );
        d.control("graph_roles", &p("roles", "")).unwrap().unwrap();
        assert!(d.roles_for("app-public", "app-public", scope).is_empty());
        assert!(d
            .roles_for("a@contoso.test", "app-public", scope)
            .is_empty());
        assert!(d.control("other", &[]).is_none());
        let c = claims_json("app-x", "app-x", scope, &["Mail.ReadWrite".into()], 5);
        assert!(c.contains("\"idtyp\":\"app\"") && c.contains("\"roles\":[\"Mail.ReadWrite\"]"));
    }
}
