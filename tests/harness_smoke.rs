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
