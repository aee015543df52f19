//! The harness's OAuth side: tokens from the identity endpoint open IMAP with XOAUTH2 for the
//! token's owner, for a shared mailbox only with a Full Access grant, and never once expired.
mod support;

use support::Harness;

const FAILED: &str = "NO [AUTHENTICATIONFAILED] Authentication failed.";

#[test]
fn xoauth2_own_and_shared_mailboxes() {
    let h = Harness::get();
    let delegate = h.unique_user("oauth-delegate");
    let shared = h.unique_user("oauth-shared");
    let other = h.unique_user("oauth-other");
    h.append(
        &shared,
        "INBOX",
        b"Subject: for the helpdesk\r\n\r\nhi\r\n",
        &[],
    );

    let (token, _refresh) = h.password_token(&delegate);
    assert!(token.len() > 1000, "Microsoft-sized token: {}", token.len());
    assert!(h.xoauth2_status(&delegate, &token).starts_with("OK "));
    assert_eq!(h.xoauth2_status(&shared, &token), FAILED, "no grant yet");

    h.grant_full_access(&shared, &delegate);
    assert!(h.xoauth2_status(&shared, &token).starts_with("OK "));
    assert_eq!(
        h.xoauth2_status(&other, &token),
        FAILED,
        "grant is per mailbox"
    );

    // The session opened with the delegate's token is the shared mailbox.
    let exists = smol::block_on(async {
        let mut s = h.xoauth2_login(&shared, &token).await;
        let mb = s.select("INBOX").await.expect("SELECT");
        let _ = s.logout().await;
        mb.exists
    });
    assert_eq!(exists, 1);

    // A garbage token and a token after expiry fail like a wrong password.
    assert_eq!(h.xoauth2_status(&delegate, "not-a-token"), FAILED);
    h.idp(&format!("/_test/expire_access_tokens?user={delegate}"));
    assert_eq!(h.xoauth2_status(&delegate, &token), FAILED);
    assert_eq!(h.xoauth2_status(&shared, &token), FAILED);
}

#[test]
fn app_only_token_needs_a_grant() {
    let h = Harness::get();
    let shared = h.unique_user("oauth-app-shared");
    let form = "grant_type=client_credentials&client_id=app-confidential&client_secret=s3cret-app&scope=https%3A%2F%2Foutlook.office365.com%2F.default";
    let (status, body) = h.idp_request("POST", "/contoso-tenant/oauth2/v2.0/token", form);
    assert_eq!(status, 200, "{body}");
    assert!(support::json_field(&body, "refresh_token").is_none());
    let token = support::json_field(&body, "access_token").expect("access_token");
    assert_eq!(h.xoauth2_status(&shared, &token), FAILED);
    h.grant_full_access(&shared, "app-confidential");
    assert!(h.xoauth2_status(&shared, &token).starts_with("OK "));
}

#[test]
fn identity_endpoint_errors_are_microsoft_shaped() {
    let h = Harness::get();
    let user = h.unique_user("oauth-err");
    let form = format!(
        "grant_type=password&client_id=app-public&username={}&password=wrong&scope=https%3A%2F%2Foutlook.office.com%2FIMAP.AccessAsUser.All",
        support::form_encode(&user)
    );
    let (status, body) = h.idp_request("POST", "/contoso-tenant/oauth2/v2.0/token", &form);
    assert_eq!(status, 400);
    assert!(body.starts_with("{\"error\":\"invalid_grant\",\"error_description\":\"AADSTS50126: Error validating credentials due to invalid username or password.\\r\\nTrace ID: "), "{body}");
    assert!(body.contains("\"error_codes\":[50126]"));
    let stats = h.idp(&format!("/_test/stats?user={user}"));
    assert!(stats.contains("\"password\":1,"), "{stats}");
}

#[test]
fn introspection_trouble_is_a_temporary_failure() {
    let h = Harness::get();
    let user = h.unique_user("oauth-unavail");
    let (token, _) = h.password_token(&user);
    h.idp(&format!("/_test/introspect?m=error&user={user}"));
    let answer = h.xoauth2_status(&user, &token);
    assert!(answer.starts_with("NO [UNAVAILABLE] "), "{answer}");
    h.idp(&format!("/_test/introspect?m=nouser&user={user}"));
    let answer = h.xoauth2_status(&user, &token);
    assert!(answer.starts_with("NO [UNAVAILABLE] "), "{answer}");
    h.idp(&format!("/_test/introspect?m=normal&user={user}"));
    assert!(h.xoauth2_status(&user, &token).starts_with("OK "));
}
