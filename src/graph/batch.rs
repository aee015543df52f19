//! JSON batching (`POST /v1.0/$batch`, at most [`MAX_REQUESTS`] requests per batch) for the
//! acknowledgements: one round trip marks read, moves or deletes up to 20 messages.

use super::json::{get, get_str, quote};
use crate::error::{Error, ErrorKind, Result};
use crate::json::{self, Value};

/// Requests per `$batch` at most (Graph's limit).
pub const MAX_REQUESTS: usize = 20;

/// One request of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `PATCH`, `POST`, `DELETE`.
    pub method: &'static str,
    /// Relative to the version root (`/users/{id}/messages/{id}`).
    pub url: String,
    /// A JSON body, if any.
    pub body: Option<String>,
}

/// One response of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The index of its request.
    pub index: usize,
    /// Its HTTP status.
    pub status: u16,
    /// Its `Retry-After` header, if any.
    pub retry_after: Option<String>,
    /// Its body, when JSON.
    pub body: Option<Value>,
}

/// The JSON body of a batch of `requests` (ids are their indexes).
pub fn encode(requests: &[Request]) -> String {
    let mut out = String::from("{\"requests\":[");
    for (i, r) in requests.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            "{{\"id\":{},\"method\":{},\"url\":{}",
            quote(&i.to_string()),
            quote(r.method),
            quote(&r.url)
        ));
        if let Some(body) = &r.body {
            out.push_str(",\"headers\":{\"Content-Type\":\"application/json\"},\"body\":");
            out.push_str(body);
        }
        out.push('}');
    }
    out.push_str("]}");
    out
}

/// Reads a batch answer for `count` requests; every request must have a response.
pub fn decode(body: &[u8], count: usize) -> Result<Vec<Response>> {
    let bad = |why: String| {
        Error::new(
            ErrorKind::Protocol,
            format!("Microsoft Graph $batch answer: {why}"),
        )
    };
    let text = std::str::from_utf8(body).map_err(|_| bad("not UTF-8".into()))?;
    let v = json::parse(text).map_err(|e| bad(format!("not JSON ({e})")))?;
    let Some(Value::Array(items)) = get(&v, "responses") else {
        return Err(bad("no \"responses\" array".into()));
    };
    let mut out: Vec<Response> = Vec::with_capacity(items.len());
    for item in items {
        let index = get_str(item, "id")
            .and_then(|s| s.parse::<usize>().ok())
            .filter(|i| *i < count)
            .ok_or_else(|| bad("a response with an unknown id".into()))?;
        let status = match get(item, "status") {
            Some(Value::Number(n)) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
            _ => None,
        }
        .ok_or_else(|| bad("a response without status".into()))?;
        let retry_after = get(item, "headers").and_then(|h| match h {
            Value::Object(members) => members
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
                .and_then(|(_, v)| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.as_str().to_string()),
                    _ => None,
                }),
            _ => None,
        });
        if out.iter().any(|r| r.index == index) {
            return Err(bad("two responses for one request".into()));
        }
        out.push(Response {
            index,
            status,
            retry_after,
            body: get(item, "body").cloned(),
        });
    }
    if out.len() != count {
        return Err(bad(format!("{} responses for {count} requests", out.len())));
    }
    out.sort_by_key(|r| r.index);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_and_decode_as_documented() {
        let reqs = vec![
            Request {
                method: "PATCH",
                url: "/users/a@b.c/messages/AAA=".into(),
                body: Some("{\"isRead\":true}".into()),
            },
            Request {
                method: "DELETE",
                url: "/users/a@b.c/messages/BBB=".into(),
                body: None,
            },
        ];
        let body = encode(&reqs);
        let v = json::parse(&body).unwrap();
        let Some(Value::Array(r)) = get(&v, "requests") else {
            panic!()
        };
        assert_eq!(get_str(&r[0], "method"), Some("PATCH"));
        assert_eq!(get_str(&r[1], "id"), Some("1"));
        let answer = br#"{"responses":[
          {"id":"1","status":429,"headers":{"Retry-After":"2"},"body":{"error":{"code":"ApplicationThrottled","message":"slow down"}}},
          {"id":"0","status":200,"headers":{"Content-Type":"application/json"},"body":{"id":"AAA=","isRead":true}}]}"#;
        let d = decode(answer, 2).unwrap();
        assert_eq!(d[0].status, 200);
        assert_eq!(d[1].status, 429);
        assert_eq!(d[1].retry_after.as_deref(), Some("2"));
        assert!(decode(answer, 3).is_err());
        assert!(decode(br#"{"responses":[{"id":"7","status":200}]}"#, 1).is_err());
    }
}
