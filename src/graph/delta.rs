//! Delta query pages of a mail folder's messages
//! (`GET /users/{id}/mailFolders/{id}/messages/delta`): what changed since the last round.

use super::json::{get, get_bool, get_str, parse_time};
use crate::error::{Error, ErrorKind, Result};
use crate::json::{self, Value};

/// What the agent asks for of each message (`$select`): `id` always comes along.
pub const SELECT: &str = "receivedDateTime,isRead";
/// Messages per page asked for (`Prefer: odata.maxpagesize`).
pub const PAGE_SIZE: u32 = 100;

/// One changed message of a delta page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The message id.
    pub id: String,
    /// `receivedDateTime` as Unix seconds (absent for removals).
    pub received: Option<u64>,
    /// `isRead`.
    pub is_read: bool,
    /// `@removed`: the message left the folder (moved or deleted).
    pub removed: bool,
}

/// One page of a delta round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The changes on this page.
    pub changes: Vec<Change>,
    /// `@odata.nextLink`: more pages follow.
    pub next: Option<String>,
    /// `@odata.deltaLink`: the round is complete; the link for the next round.
    pub delta: Option<String>,
}

/// Reads one delta page.
pub fn parse_page(body: &[u8]) -> Result<Page> {
    let bad = |why: String| {
        Error::new(
            ErrorKind::Protocol,
            format!("Microsoft Graph delta page: {why}"),
        )
    };
    let text = std::str::from_utf8(body).map_err(|_| bad("not UTF-8".into()))?;
    let v = json::parse(text).map_err(|e| bad(format!("not JSON ({e})")))?;
    let Some(Value::Array(items)) = get(&v, "value") else {
        return Err(bad("no \"value\" array".into()));
    };
    let mut changes = Vec::with_capacity(items.len());
    for item in items {
        let Some(id) = get_str(item, "id") else {
            return Err(bad("a change without \"id\"".into()));
        };
        if id.is_empty() || id.len() > 1024 || id.chars().any(char::is_control) {
            return Err(bad("an invalid message id".into()));
        }
        let removed = get(item, "@removed").is_some();
        let received = get_str(item, "receivedDateTime").and_then(parse_time);
        changes.push(Change {
            id: id.to_string(),
            received,
            is_read: get_bool(item, "isRead").unwrap_or(false),
            removed,
        });
    }
    let next = get_str(&v, "@odata.nextLink").map(str::to_string);
    let delta = get_str(&v, "@odata.deltaLink").map(str::to_string);
    if next.is_none() && delta.is_none() {
        return Err(bad("neither @odata.nextLink nor @odata.deltaLink".into()));
    }
    Ok(Page {
        changes,
        next,
        delta,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_as_documented() {
        // The shape of Microsoft's documented delta answer (Get incremental changes to
        // messages in a folder).
        let body = br##"{
  "@odata.context":"https://graph.microsoft.com/v1.0/$metadata#Collection(message)",
  "@odata.nextLink":"https://graph.microsoft.com/v1.0/me/mailfolders('AQMkADNkNAAAgEMAAAA')/messages/delta?$skiptoken=GwcBoTmPuoTQWfcsAbkYM",
  "value": [
    {"@odata.type": "#microsoft.graph.message", "@odata.etag": "W/\"CQAAABYAAAARn2vdzPFjSbaPPxzjlzOTAAAAAAFY\"",
     "id": "AAMkADNkNAAARn2vdzPFjSbaPPxzjlzOTAAAAAAFYAAA=", "receivedDateTime": "2016-12-08T01:58:51Z", "isRead": false},
    {"id": "AAMkADNkNAAARn2vdzPFjSbaPPxzjlzOTAAAAAAFZAAA=", "@removed": {"reason": "deleted"}}
  ]
}"##;
        let p = parse_page(body).unwrap();
        assert_eq!(p.changes.len(), 2);
        assert!(!p.changes[0].removed && !p.changes[0].is_read);
        assert_eq!(p.changes[0].received, Some(1_481_162_331));
        assert!(p.changes[1].removed);
        assert!(p.next.is_some() && p.delta.is_none());
        let last = br#"{"value":[],"@odata.deltaLink":"https://graph.microsoft.com/v1.0/me/mailfolders/x/messages/delta?$deltatoken=abc"}"#;
        assert!(parse_page(last).unwrap().delta.is_some());
        assert!(parse_page(br#"{"value":[]}"#).is_err());
        assert!(parse_page(br#"{"value":[{"isRead":true}],"@odata.deltaLink":"x"}"#).is_err());
        assert!(parse_page(b"<html>").is_err());
    }
}
