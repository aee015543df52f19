//! Tenant discovery: `GET /{tenant or domain}/v2.0/.well-known/openid-configuration`, the
//! OpenID configuration Microsoft publishes for every tenant and every domain it verified. Its
//! `issuer` holds the tenant's GUID; a domain no tenant owns is answered with AADSTS90002.

use crate::directory::{DOMAIN, TENANT, TENANT_GUID};
use crate::errors::{aad, Ctx};
use crate::service::Reply;
use crate::util::json_str;
use std::sync::OnceLock;

static BASE_URL: OnceLock<String> = OnceLock::new();

/// The endpoint's own URL (`http://127.0.0.1:19980`), for the endpoints the document lists.
pub fn set_base_url(url: &str) {
    let _ = BASE_URL.set(url.trim_end_matches('/').to_string());
}

fn base_url() -> &'static str {
    BASE_URL
        .get()
        .map(String::as_str)
        .unwrap_or("http://127.0.0.1:19980")
}

/// The tenant GUID that `segment` (the GUID, the tenant name or a verified domain) names.
pub fn tenant_of(segment: &str) -> Option<&'static str> {
    let s = segment.to_ascii_lowercase();
    (s == TENANT || s == DOMAIN || s == TENANT_GUID).then_some(TENANT_GUID)
}

/// The answer to `GET /{segment}/v2.0/.well-known/openid-configuration`.
pub fn openid_configuration(segment: &str) -> Reply {
    let Some(tid) = tenant_of(segment) else {
        let ctx = Ctx {
            tenant: segment,
            ..Ctx::default()
        };
        let e = aad(90002, &ctx).expect("90002 is known");
        return Reply::Answer(e.status, "application/json; charset=utf-8", e.body());
    };
    let base = base_url();
    // As Microsoft's: the issuer names the public cloud's host, the endpoints this one.
    let issuer = format!("https://login.microsoftonline.com/{tid}/v2.0");
    let body = format!(
        "{{\"token_endpoint\":{},\"token_endpoint_auth_methods_supported\":[\"client_secret_post\",\"private_key_jwt\",\"client_secret_basic\"],\"jwks_uri\":{},\"response_modes_supported\":[\"query\",\"fragment\",\"form_post\"],\"subject_types_supported\":[\"pairwise\"],\"id_token_signing_alg_values_supported\":[\"RS256\"],\"response_types_supported\":[\"code\",\"id_token\",\"code id_token\",\"id_token token\"],\"scopes_supported\":[\"openid\",\"profile\",\"email\",\"offline_access\"],\"issuer\":{},\"request_uri_parameter_supported\":false,\"userinfo_endpoint\":\"https://graph.microsoft.com/oidc/userinfo\",\"authorization_endpoint\":{},\"device_authorization_endpoint\":{},\"http_logout_supported\":true,\"frontchannel_logout_supported\":true,\"end_session_endpoint\":{},\"claims_supported\":[\"sub\",\"iss\",\"aud\",\"exp\",\"iat\",\"tid\"],\"tenant_region_scope\":\"EU\",\"cloud_instance_name\":\"microsoftonline.com\",\"cloud_graph_host_name\":\"graph.windows.net\",\"msgraph_host\":\"graph.microsoft.com\",\"rbac_url\":\"https://pas.windows.net\"}}",
        json_str(&format!("{base}/{tid}/oauth2/v2.0/token")),
        json_str(&format!("{base}/{tid}/discovery/v2.0/keys")),
        json_str(&issuer),
        json_str(&format!("{base}/{tid}/oauth2/v2.0/authorize")),
        json_str(&format!("{base}/{tid}/oauth2/v2.0/devicecode")),
        json_str(&format!("{base}/{tid}/oauth2/v2.0/logout")),
    );
    Reply::Answer(200, "application/json; charset=utf-8", body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(r: Reply) -> (u16, String) {
        match r {
            Reply::Answer(s, _, b) => (s, b),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn known_domains_name_the_tenant_guid() {
        for seg in ["contoso.test", "CONTOSO-TENANT", TENANT_GUID] {
            let (status, body) = answer(openid_configuration(seg));
            assert_eq!(status, 200);
            assert!(
                body.contains(&format!(
                    "\"issuer\":\"https://login.microsoftonline.com/{TENANT_GUID}/v2.0\""
                )),
                "{body}"
            );
        }
        let (status, body) = answer(openid_configuration("fabrikam.example"));
        assert_eq!(status, 400);
        assert!(
            body.contains("AADSTS90002") && body.contains("fabrikam.example"),
            "{body}"
        );
    }
}
