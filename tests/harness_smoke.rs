//! The harness itself works: a fresh user gets an empty mailbox, APPEND stores what the helpers
//! read back, folders can be created.
mod support;

use support::Harness;

#[test]
fn append_then_list_round_trips() {
    let h = Harness::get();
    let user = h.unique_user("smoke");
    assert_eq!(h.count(&user, "INBOX"), 0, "a fresh user starts empty");

    let raw = b"From: a@example.com\r\nSubject: smoke \xe9\r\n\r\nhello\r\n";
    let uid1 = h.append(&user, "INBOX", raw, &[]);
    let uid2 = h.append(&user, "INBOX", b"Subject: two\r\n\r\nx\r\n", &["\\Seen"]);
    assert!(uid2 > uid1);

    let msgs = h.list_messages(&user, "INBOX");
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0].0, uid1);
    assert_eq!(
        msgs[0].2,
        raw.to_vec(),
        "bytes come back unchanged (8-bit too)"
    );
    assert!(
        !msgs[0].1.iter().any(|f| f == "\\Seen"),
        "listing does not mark read"
    );
    assert!(msgs[1].1.iter().any(|f| f == "\\Seen"));
    assert_eq!(h.count(&user, "INBOX"), 2);

    assert!(!h.folder_exists(&user, "Processed"));
    h.create_folder(&user, "Processed");
    assert!(h.folder_exists(&user, "Processed"));
    assert_eq!(h.count(&user, "Processed"), 0);
}

#[test]
fn users_are_unique() {
    let a = support::unique_user("U");
    let b = support::unique_user("U");
    assert_ne!(a, b);
    assert!(a.starts_with("u-") && a.ends_with("@contoso.test"), "{a}");
}

/// The first line after the greeting for `CAPABILITY` on a plain connection to `host:port`.
fn plain_capabilities(host: &str, port: u16) -> String {
    use futures::{AsyncBufReadExt, AsyncWriteExt};
    smol::block_on(async {
        let tcp = psa_mail_agent::net::connect_tcp(host, port, std::time::Duration::from_secs(20))
            .await
            .expect("connect");
        let mut io = futures::io::BufReader::new(tcp);
        let mut line = String::new();
        io.read_line(&mut line).await.expect("greeting");
        io.get_mut()
            .write_all(b"c1 CAPABILITY\r\n")
            .await
            .expect("write");
        line.clear();
        io.read_line(&mut line).await.expect("capabilities");
        line
    })
}

#[test]
fn endpoints_behave_as_documented() {
    let h = Harness::get();
    let local = plain_capabilities("127.0.0.1", h.imap_port);
    assert!(
        local.contains(" STARTTLS") && !local.contains("LOGINDISABLED"),
        "{local}"
    );
    let remote_like = plain_capabilities("127.0.0.2", h.imap_port);
    assert!(
        remote_like.contains(" STARTTLS") && remote_like.contains(" LOGINDISABLED"),
        "{remote_like}"
    );
    let plain = plain_capabilities(&h.nostarttls_host, h.nostarttls_port);
    assert!(
        plain.contains(" AUTH=PLAIN") && !plain.contains("STARTTLS"),
        "{plain}"
    );
    assert!(!plain.contains("LOGINDISABLED"), "{plain}");

    // The certificate does not cover the wrong host: TLS refuses it.
    let err = smol::block_on(async {
        let limit = std::time::Duration::from_secs(20);
        let tcp = psa_mail_agent::net::connect_tcp(&h.wrong_host, h.imaps_port, limit)
            .await
            .expect("connect");
        let config = psa_mail_agent::tls::client_config(Some(&h.ca_file)).expect("config");
        psa_mail_agent::tls::handshake(config, &h.wrong_host, tcp, limit)
            .await
            .err()
    })
    .expect("the handshake must fail");
    assert_eq!(err.kind(), psa_mail_agent::ErrorKind::Certificate, "{err}");
}
