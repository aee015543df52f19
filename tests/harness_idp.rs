//! The identity endpoint over real HTTP: fault modes, injected AADSTS failures, keep-alive and
//! the device-code flow. Every setting is scoped to a fresh user, so tests run in parallel.
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use support::{form_encode, json_field, Harness};

const SCOPE: &str = "https%3A%2F%2Foutlook.office.com%2FIMAP.AccessAsUser.All%20offline_access";

fn password_form(h: &Harness, user: &str) -> String {
    format!(
        "grant_type=password&client_id=app-public&username={}&password={}&scope={SCOPE}",
        form_encode(user),
        form_encode(&h.password)
    )
}

fn raw_post(
    h: &Harness,
    path: &str,
    body: &str,
    read_timeout: Duration,
) -> std::io::Result<Vec<u8>> {
    let addr = h.idp_url.trim_start_matches("http://");
    let mut tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(read_timeout))?;
    write!(
        tcp,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut out = Vec::new();
    tcp.read_to_end(&mut out)?;
    Ok(out)
}

#[test]
fn down_closes_and_garbage_is_not_json() {
    let h = Harness::get();
    let user = h.unique_user("idp-modes");
    let form = password_form(h, &user);
    h.idp(&format!("/_test/mode?m=down&user={user}"));
    let answer = raw_post(
        h,
        "/contoso-tenant/oauth2/v2.0/token",
        &form,
        Duration::from_secs(20),
    )
    .expect("connection");
    assert!(answer.is_empty(), "down answers nothing: {answer:?}");

    h.idp(&format!("/_test/mode?m=garbage&user={user}"));
    let (status, body) = h.idp_request("POST", "/contoso-tenant/oauth2/v2.0/token", &form);
    assert_eq!(status, 200);
    assert!(body.starts_with("<html>"), "{body}");

    h.idp(&format!("/_test/mode?m=slow&user={user}"));
    let r = raw_post(
        h,
        "/contoso-tenant/oauth2/v2.0/token",
        &form,
        Duration::from_millis(500),
    );
    let e = r.expect_err("slow answers nothing");
    assert!(
        matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{e}"
    );

    h.idp(&format!("/_test/mode?m=normal&user={user}"));
    let (status, _) = h.idp_request("POST", "/contoso-tenant/oauth2/v2.0/token", &form);
    assert_eq!(status, 200);
    let stats = h.idp(&format!("/_test/stats?user={user}"));
    assert!(
        stats.contains("\"token_requests\":4,\"password\":4,"),
        "{stats}"
    );
}

#[test]
fn fail_next_injects_microsofts_errors_then_recovers() {
    let h = Harness::get();
    let user = h.unique_user("idp-fail");
    let form = password_form(h, &user);
    h.idp(&format!("/_test/fail_next?code=53003&count=2&user={user}"));
    for _ in 0..2 {
        let (status, body) = h.idp_request("POST", "/contoso-tenant/oauth2/v2.0/token", &form);
        assert_eq!(status, 400);
        assert!(body.contains("\"error\":\"invalid_grant\""), "{body}");
        assert!(
            body.contains("AADSTS53003: Access has been blocked by Conditional Access policies."),
            "{body}"
        );
    }
    let (status, body) = h.idp_request("POST", "/contoso-tenant/oauth2/v2.0/token", &form);
    assert_eq!(status, 200, "{body}");
    let (status, body) = h.idp_request("POST", "/_test/fail_next?code=4711", "");
    assert_eq!(status, 400, "unknown codes are refused: {body}");
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let h = Harness::get();
    let user = h.unique_user("idp-keepalive");
    let form = password_form(h, &user);
    let addr = h.idp_url.trim_start_matches("http://");
    let mut tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let request = format!(
        "POST /contoso-tenant/oauth2/v2.0/token HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    // Two requests in one write (pipelined), then a third asking to close.
    tcp.write_all(format!("{request}{request}").as_bytes())
        .unwrap();
    tcp.write_all(
        request
            .replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    let mut all = String::new();
    tcp.read_to_string(&mut all).unwrap();
    assert_eq!(all.matches("HTTP/1.1 200 OK\r\n").count(), 3, "{all}");
    assert_eq!(all.matches("\"token_type\":\"Bearer\"").count(), 3);
}

#[test]
fn device_code_flow_over_http() {
    let h = Harness::get();
    let user = h.unique_user("mfa-idp-device");
    let (status, body) = h.idp_request(
        "POST",
        "/contoso-tenant/oauth2/v2.0/devicecode",
        &format!("client_id=app-public&scope={SCOPE}"),
    );
    assert_eq!(status, 200, "{body}");
    let device_code = json_field(&body, "device_code").expect("device_code");
    let user_code = json_field(&body, "user_code").expect("user_code");
    assert_eq!(
        json_field(&body, "verification_uri").as_deref(),
        Some("https://microsoft.com/devicelogin")
    );
    let poll = format!(
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&client_id=app-public&device_code={device_code}"
    );
    let (status, body) = h.idp_request("POST", "/contoso-tenant/oauth2/v2.0/token", &poll);
    assert_eq!(status, 400);
    assert_eq!(
        json_field(&body, "error").as_deref(),
        Some("authorization_pending")
    );

    // An MFA user cannot use the password grant but signs in interactively.
    h.idp(&format!(
        "/_test/approve_device?user_code={user_code}&user={user}"
    ));
    // Polling again right away is too fast for the default interval of 5 s.
    let (_, body) = h.idp_request("POST", "/contoso-tenant/oauth2/v2.0/token", &poll);
    assert_eq!(
        json_field(&body, "error").as_deref(),
        Some("slow_down"),
        "{body}"
    );
    std::thread::sleep(Duration::from_secs(5));
    let (status, body) = h.idp_request("POST", "/contoso-tenant/oauth2/v2.0/token", &poll);
    assert_eq!(status, 200, "{body}");
    let token = json_field(&body, "access_token").expect("access_token");
    assert!(json_field(&body, "refresh_token").is_some());
    assert!(h.xoauth2_status(&user, &token).starts_with("OK "));
}
