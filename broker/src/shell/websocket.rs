//! The WebSocket opening handshake (RFC 6455 §4.2) of a WebSocket listener, by hand over
//! httparse so that every request gets an answer: an upgrade on any path with the subprotocol
//! `mqtt` (or the older `mqttv3.1`; a request naming no subprotocol is served too) gets
//! `101 Switching Protocols` naming it; anything else gets an HTTP error status and the
//! connection is closed (`405` for another method, `426 Upgrade Required` for a request that
//! is not a WebSocket upgrade or asks for another WebSocket version, `400` for the rest).
//! Frames are then tungstenite's, limited to `max_packet_size` each (and per message).

use std::net::SocketAddr;
use std::time::Instant;

use async_tungstenite::WebSocketStream;
use async_tungstenite::tungstenite::handshake::derive_accept_key;
use async_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use smol::Timer;
use smol::future::or;
use smol::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest request head read (Mosquitto's `websockets_headers_size` is 1024 by default;
/// browsers send more).
const MAX_REQUEST: usize = 8 * 1024;
/// Header lines parsed at most.
const MAX_HEADERS: usize = 64;
/// The subprotocols served, in order of preference.
const SUBPROTOCOLS: [&str; 2] = ["mqtt", "mqttv3.1"];

/// A refused request: the status line's code and text, extra headers, and the reason (the
/// response body and the log line).
struct Refusal {
    status: &'static str,
    headers: &'static str,
    reason: String,
}

impl Refusal {
    fn new(status: &'static str, reason: impl Into<String>) -> Refusal {
        Refusal {
            status,
            headers: "",
            reason: reason.into(),
        }
    }
}

/// The outcome of reading the request.
enum Head {
    /// Accepted: the response to send, and the bytes read past the request (frames already).
    Upgrade {
        response: String,
        rest: Vec<u8>,
    },
    Refused(Refusal),
    /// The client closed, failed, or did not finish in time: nothing to answer.
    Gone(String),
}

/// Read the upgrade request on `stream` and answer it, all before `deadline`. Returns the
/// WebSocket, or `None` (logged) if the connection is over.
pub(super) async fn accept<S>(
    mut stream: S,
    peer: SocketAddr,
    max_frame: usize,
    deadline: Instant,
) -> Option<WebSocketStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let head = or(read_head(&mut stream), async {
        Timer::at(deadline).await;
        Head::Gone("not done within connect_timeout".into())
    })
    .await;
    let (response, rest) = match head {
        Head::Upgrade { response, rest } => (response, rest),
        Head::Gone(why) => {
            log::info!("Client {peer} WebSocket handshake failed: {why}, closing.");
            return None;
        }
        Head::Refused(r) => {
            log::info!(
                "Client {peer} WebSocket handshake failed: {} ({}), closing.",
                r.reason,
                r.status
            );
            let body = format!("{}\n", r.reason);
            let answer = format!(
                "HTTP/1.1 {}\r\nConnection: close\r\n{}Content-Type: text/plain\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                r.status,
                r.headers,
                body.len()
            );
            let _ = or(
                async {
                    let _ = stream.write_all(answer.as_bytes()).await;
                    let _ = stream.close().await;
                },
                async {
                    Timer::at(deadline).await;
                },
            )
            .await;
            return None;
        }
    };
    let sent = or(
        async {
            stream.write_all(response.as_bytes()).await?;
            stream.flush().await
        },
        async {
            Timer::at(deadline).await;
            Err(std::io::ErrorKind::TimedOut.into())
        },
    )
    .await;
    if let Err(e) = sent {
        log::info!("Client {peer} WebSocket handshake failed: {e}, closing.");
        return None;
    }
    let config = WebSocketConfig::default()
        .max_frame_size(Some(max_frame))
        .max_message_size(Some(max_frame));
    Some(WebSocketStream::from_partially_read(stream, rest, Role::Server, Some(config)).await)
}

/// Read until the request head is complete, and decide.
async fn read_head<S>(stream: &mut S) -> Head
where
    S: AsyncRead + Unpin,
{
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) => return Head::Gone("closed before its request was complete".into()),
            Ok(n) => n,
            Err(e) => return Head::Gone(e.to_string()),
        };
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let rest = buf.get(len..).unwrap_or_default().to_vec();
                return match decide(&request) {
                    Ok(response) => Head::Upgrade { response, rest },
                    Err(refusal) => Head::Refused(refusal),
                };
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_REQUEST => {}
            Ok(httparse::Status::Partial) => {
                return Head::Refused(Refusal::new(
                    "431 Request Header Fields Too Large",
                    format!("request head longer than {MAX_REQUEST} bytes"),
                ));
            }
            Err(e) => {
                return Head::Refused(Refusal::new(
                    "400 Bad Request",
                    format!("not an HTTP request ({e})"),
                ));
            }
        }
    }
}

/// The header's values, comma-separated lists split, trimmed.
fn tokens<'a>(request: &'a httparse::Request<'_, '_>, name: &str) -> Vec<&'a str> {
    request
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .filter_map(|h| std::str::from_utf8(h.value).ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect()
}

/// The 101 response to a WebSocket upgrade request, or why it is refused.
fn decide(request: &httparse::Request<'_, '_>) -> Result<String, Refusal> {
    if request.method != Some("GET") {
        return Err(Refusal::new(
            "405 Method Not Allowed",
            format!(
                "method {} (a WebSocket upgrade is a GET)",
                request.method.unwrap_or_default()
            ),
        ));
    }
    let has = |name: &str, token: &str| {
        tokens(request, name)
            .iter()
            .any(|t| t.eq_ignore_ascii_case(token))
    };
    if !has("Upgrade", "websocket") || !has("Connection", "upgrade") {
        return Err(Refusal {
            status: "426 Upgrade Required",
            headers: "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n",
            reason: "not a WebSocket upgrade request (this port serves MQTT over WebSockets)"
                .into(),
        });
    }
    if !has("Sec-WebSocket-Version", "13") {
        return Err(Refusal {
            status: "426 Upgrade Required",
            headers: "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n",
            reason: "WebSocket version 13 is the one served".into(),
        });
    }
    let key = request
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("Sec-WebSocket-Key"))
        .map(|h| h.value.trim_ascii())
        .filter(|k| !k.is_empty())
        .ok_or_else(|| Refusal::new("400 Bad Request", "no Sec-WebSocket-Key"))?;
    let offered = tokens(request, "Sec-WebSocket-Protocol");
    let protocol = SUBPROTOCOLS
        .iter()
        .find(|p| offered.iter().any(|o| o.eq_ignore_ascii_case(p)));
    let protocol_line = match protocol {
        Some(p) => format!("Sec-WebSocket-Protocol: {p}\r\n"),
        None if offered.is_empty() => String::new(),
        None => {
            return Err(Refusal::new(
                "400 Bad Request",
                format!(
                    "subprotocols {} offered; this port speaks mqtt (or mqttv3.1)",
                    offered.join(", ")
                ),
            ));
        }
    };
    Ok(format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n{protocol_line}\r\n",
        derive_accept_key(key)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(request: &str) -> Result<String, String> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut r = httparse::Request::new(&mut headers);
        assert!(r.parse(request.as_bytes()).unwrap().is_complete());
        decide(&r).map_err(|e| format!("{} {}", e.status, e.reason))
    }

    const UPGRADE: &str = "GET /anything HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\n\
                           Connection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\n\
                           Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

    #[test]
    fn upgrade_answers() {
        let ok = answer(&format!(
            "{UPGRADE}Sec-WebSocket-Protocol: mqttv3.1, mqtt\r\n\r\n"
        ))
        .unwrap();
        // RFC 6455 §1.3's example key.
        assert!(ok.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        assert!(ok.contains("Sec-WebSocket-Protocol: mqtt\r\n"));
        let ok = answer(&format!(
            "{UPGRADE}Sec-WebSocket-Protocol: mqttv3.1\r\n\r\n"
        ))
        .unwrap();
        assert!(ok.contains("Sec-WebSocket-Protocol: mqttv3.1\r\n"));
        let ok = answer(&format!("{UPGRADE}\r\n")).unwrap();
        assert!(!ok.contains("Sec-WebSocket-Protocol"));
        let no = answer(&format!("{UPGRADE}Sec-WebSocket-Protocol: chat\r\n\r\n"));
        assert!(no.unwrap_err().starts_with("400"));
        let no = answer("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(no.unwrap_err().starts_with("426"));
        let no = answer("POST / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(no.unwrap_err().starts_with("405"));
    }
}
