//! The wire limit for `scripts/bench`: the least an IMAP client can do to read a folder. It logs
//! in over implicit TLS (the crate's own rustls setup), issues one `UID FETCH 1:* BODY.PEEK[]`,
//! and discards the bytes while following literals, so nothing is parsed, copied or kept.
//! Every other client in the benchmark is measured against it.
//!
//! Run by `scripts/bench`; alone it needs `PMA_BENCH_HOST PMA_BENCH_PORT PMA_BENCH_CA
//! PMA_BENCH_USER PMA_BENCH_PASSWORD` (and optionally `PMA_BENCH_FOLDER`, default INBOX) and
//! prints `wire: MESSAGES messages BYTES bytes`. Without them it says so and exits 0, so a plain
//! `cargo bench` does not fail.

use futures::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use std::time::Duration;

const STEP: Duration = Duration::from_secs(600);

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The literal length announced at the end of a response line (`... {1234}\r\n`).
fn literal_len(line: &[u8]) -> Option<usize> {
    let line = line.strip_suffix(b"\r\n").unwrap_or(line);
    let rest = line.strip_suffix(b"}")?;
    let open = rest.iter().rposition(|&b| b == b'{')?;
    let digits = rest[open + 1..]
        .strip_suffix(b"+")
        .unwrap_or(&rest[open + 1..]);
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Reads responses up to the tagged one for `tag`, skipping literals; returns (untagged FETCH
/// responses, literal bytes) and fails unless the command ended in OK.
async fn finish<R: futures::io::AsyncBufRead + Unpin>(
    io: &mut R,
    tag: &str,
    sink: &mut [u8],
) -> std::io::Result<(u64, u64)> {
    let (mut fetches, mut bytes) = (0u64, 0u64);
    let mut line = Vec::with_capacity(256);
    let done = format!("{tag} ");
    loop {
        line.clear();
        if io.read_until(b'\n', &mut line).await? == 0 {
            return Err(std::io::Error::other("connection closed"));
        }
        if line.starts_with(b"* ") && line.windows(7).any(|w| w == b" FETCH ") {
            fetches += 1;
        }
        if let Some(mut n) = literal_len(&line) {
            bytes += n as u64;
            while n > 0 {
                let take = n.min(sink.len());
                io.read_exact(&mut sink[..take]).await?;
                n -= take;
            }
            // The response continues after the literal (at least its closing parenthesis).
            continue;
        }
        if line.starts_with(done.as_bytes()) {
            if line[done.len()..].starts_with(b"OK") {
                return Ok((fetches, bytes));
            }
            return Err(std::io::Error::other(
                String::from_utf8_lossy(&line).trim_end().to_string(),
            ));
        }
    }
}

fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn main() {
    let (Some(host), Some(port), Some(ca), Some(user), Some(password)) = (
        env("PMA_BENCH_HOST"),
        env("PMA_BENCH_PORT"),
        env("PMA_BENCH_CA"),
        env("PMA_BENCH_USER"),
        env("PMA_BENCH_PASSWORD"),
    ) else {
        println!("wire: skipped (run by scripts/bench, which sets PMA_BENCH_HOST and friends)");
        return;
    };
    let folder = env("PMA_BENCH_FOLDER").unwrap_or_else(|| "INBOX".into());
    let port: u16 = port.parse().expect("PMA_BENCH_PORT is a port number");
    let result: std::io::Result<(u64, u64)> = smol::block_on(async {
        let tcp = psa_mail_agent::net::connect_tcp(&host, port, STEP)
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let config = psa_mail_agent::tls::client_config(Some(std::path::Path::new(&ca)))
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let tls = psa_mail_agent::tls::handshake(config, &host, tcp, STEP)
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let mut io = BufReader::with_capacity(256 * 1024, tls);
        let mut sink = vec![0u8; 256 * 1024];
        let mut greeting = Vec::new();
        io.read_until(b'\n', &mut greeting).await?;
        for (tag, cmd) in [
            (
                "a1",
                format!("LOGIN {} {}", quoted(&user), quoted(&password)),
            ),
            ("a2", format!("SELECT {}", quoted(&folder))),
        ] {
            io.get_mut()
                .write_all(format!("{tag} {cmd}\r\n").as_bytes())
                .await?;
            io.get_mut().flush().await?;
            finish(&mut io, tag, &mut sink).await?;
        }
        io.get_mut()
            .write_all(b"a3 UID FETCH 1:* BODY.PEEK[]\r\n")
            .await?;
        io.get_mut().flush().await?;
        let counts = finish(&mut io, "a3", &mut sink).await?;
        io.get_mut().write_all(b"a4 LOGOUT\r\n").await?;
        io.get_mut().flush().await?;
        Ok(counts)
    });
    match result {
        Ok((messages, bytes)) => println!("wire: {messages} messages {bytes} bytes"),
        Err(e) => {
            eprintln!("wire: {e}");
            std::process::exit(1);
        }
    }
}
