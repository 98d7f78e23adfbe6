//! SOCKS5 (RFC 1928, user name and password: RFC 1929) for `--proxy socks5h://...`, as
//! Mosquitto's tools use it: the proxy resolves the broker's host name (`socks5h`), and a user
//! name and password in the URL are offered as the only authentication method besides none.

use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::TcpStream;

/// A SOCKS5 proxy, from `--proxy socks5h://[user[:password]@]host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    /// The proxy's host.
    pub host: String,
    /// The proxy's port (1080 unless given).
    pub port: u16,
    /// User name and password for the proxy, if the URL has them.
    pub credentials: Option<(String, String)>,
}

impl Proxy {
    /// Parse Mosquitto's `--proxy` URL; `Err` is Mosquitto's message.
    pub fn parse(url: &str) -> Result<Proxy, String> {
        let Some(rest) = url.strip_prefix("socks5h://") else {
            return Err(format!("Unsupported proxy protocol: {url}"));
        };
        let (credentials, hostport) = match rest.rsplit_once('@') {
            Some((auth, hostport)) => {
                let (user, password) = auth.split_once(':').unwrap_or((auth, ""));
                (Some((user.to_owned(), password.to_owned())), hostport)
            }
            None => (None, rest),
        };
        let hostport = hostport.trim_end_matches('/');
        let (host, port) = match hostport.rsplit_once(':') {
            Some((host, port)) => match port.parse::<u16>() {
                Ok(p) if p > 0 => (host, p),
                // Mosquitto reads the port with atoi().
                _ => {
                    return Err(format!("Invalid proxy port {}", crate::cli::atoi(port)));
                }
            },
            None => (hostport, 1080),
        };
        if host.is_empty() {
            return Err(format!("Invalid proxy url: {url}"));
        }
        Ok(Proxy {
            host: host.to_owned(),
            port,
            credentials,
        })
    }

    /// A TCP connection to `host`:`port` through the proxy.
    pub async fn connect(&self, host: &str, port: u16) -> std::io::Result<TcpStream> {
        let mut s = TcpStream::connect((self.host.as_str(), self.port)).await?;
        let _ = s.set_nodelay(true);
        // Greeting: no authentication, and user name/password when we have them.
        let greeting: &[u8] = if self.credentials.is_some() {
            &[5, 2, 0x00, 0x02]
        } else {
            &[5, 1, 0x00]
        };
        s.write_all(greeting).await?;
        let mut choice = [0u8; 2];
        s.read_exact(&mut choice).await?;
        match (choice, &self.credentials) {
            ([5, 0x00], _) => {}
            ([5, 0x02], Some((user, password))) => {
                let mut auth = vec![1, len_u8(user)?];
                auth.extend_from_slice(user.as_bytes());
                auth.push(len_u8(password)?);
                auth.extend_from_slice(password.as_bytes());
                s.write_all(&auth).await?;
                let mut status = [0u8; 2];
                s.read_exact(&mut status).await?;
                if status[1] != 0 {
                    return Err(proxy_error("the proxy refused the user name or password"));
                }
            }
            _ => {
                return Err(proxy_error(
                    "the proxy accepts none of our authentication methods",
                ));
            }
        }
        // CONNECT to the broker by name (socks5h: the proxy resolves it).
        let mut request = vec![5, 1, 0, 3, len_u8(host)?];
        request.extend_from_slice(host.as_bytes());
        request.extend_from_slice(&port.to_be_bytes());
        s.write_all(&request).await?;
        let mut head = [0u8; 4];
        s.read_exact(&mut head).await?;
        if head[0] != 5 || head[1] != 0 {
            return Err(proxy_error(&format!(
                "the proxy could not connect (reply {})",
                head[1]
            )));
        }
        // The bound address, skipped.
        let rest = match head[3] {
            1 => 4 + 2,
            4 => 16 + 2,
            3 => {
                let mut n = [0u8; 1];
                s.read_exact(&mut n).await?;
                usize::from(n[0]) + 2
            }
            _ => return Err(proxy_error("malformed proxy reply")),
        };
        let mut skip = vec![0u8; rest];
        s.read_exact(&mut skip).await?;
        Ok(s)
    }
}

fn len_u8(s: &str) -> std::io::Result<u8> {
    u8::try_from(s.len()).map_err(|_| proxy_error("a name longer than 255 bytes"))
}

fn proxy_error(why: &str) -> std::io::Error {
    std::io::Error::other(format!("Proxy error: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            Proxy::parse("socks5h://proxy.example:9050"),
            Ok(Proxy {
                host: "proxy.example".into(),
                port: 9050,
                credentials: None
            })
        );
        assert_eq!(
            Proxy::parse("socks5h://u:p@127.0.0.1"),
            Ok(Proxy {
                host: "127.0.0.1".into(),
                port: 1080,
                credentials: Some(("u".into(), "p".into()))
            })
        );
        assert!(Proxy::parse("socks4://x").is_err());
        assert!(Proxy::parse("socks5h://x:notaport").is_err());
        assert!(Proxy::parse("socks5h://").is_err());
    }
}
