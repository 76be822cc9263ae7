//! Connection strings, in both forms libpq accepts: `key=value` pairs
//! (`host=/tmp port=5432 user=postgres`, values optionally single-quoted
//! with `\'` and `\\` escapes) and URIs
//! (`postgresql://user:password@host:port/dbname?application_name=x`, with
//! percent-encoding). Only the keys a replication client needs are kept;
//! unknown keys are an error so that a typo does not silently change what
//! is connected to, except libpq keys that do not change the connection's
//! meaning for us (`sslmode=disable|allow|prefer`, `gssencmode`, and a few
//! client-side tuning keys), which are accepted.
//!
//! A host starting with `/` is a Unix-socket directory (the socket is
//! `<dir>/.s.PGSQL.<port>`), as in libpq.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::ClientError;

/// Where to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Tcp(String),
    /// Directory holding the server's Unix socket.
    Unix(PathBuf),
}

/// A parsed connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub host: Host,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub dbname: Option<String>,
    pub application_name: Option<String>,
    pub options: Option<String>,
    pub connect_timeout: Option<Duration>,
}

impl Config {
    /// A TCP configuration (mostly for tests and callers that build one).
    pub fn tcp(host: &str, port: u16, user: &str) -> Config {
        Config {
            host: Host::Tcp(host.to_owned()),
            port,
            user: user.to_owned(),
            password: None,
            dbname: None,
            application_name: None,
            options: None,
            connect_timeout: None,
        }
    }

    /// `host:port` or the socket path, for messages.
    pub fn address(&self) -> String {
        match &self.host {
            Host::Tcp(h) => format!("{h}:{}", self.port),
            Host::Unix(dir) => dir
                .join(format!(".s.PGSQL.{}", self.port))
                .display()
                .to_string(),
        }
    }

    /// The connection string without the password (safe to log or report).
    pub fn redacted(&self) -> String {
        let mut s = match &self.host {
            Host::Tcp(h) => format!("host={h}"),
            Host::Unix(d) => format!("host={}", d.display()),
        };
        s.push_str(&format!(" port={} user={}", self.port, self.user));
        if let Some(db) = &self.dbname {
            s.push_str(&format!(" dbname={db}"));
        }
        if let Some(app) = &self.application_name {
            s.push_str(&format!(" application_name={app}"));
        }
        s
    }

    fn from_pairs(pairs: Vec<(String, String)>) -> Result<Config, ClientError> {
        let mut host = None;
        let mut port = None;
        let mut cfg = Config::tcp("localhost", 5432, "");
        let mut user = None;
        for (k, v) in pairs {
            match k.as_str() {
                "host" | "hostaddr" => host = Some(v),
                "port" => {
                    port = Some(
                        v.parse::<u16>()
                            .map_err(|_| bad(format!("invalid port {v:?}")))?,
                    )
                }
                "user" => user = Some(v),
                "password" => cfg.password = Some(v),
                "dbname" => cfg.dbname = Some(v),
                "application_name" => cfg.application_name = Some(v),
                "options" => cfg.options = Some(v),
                "connect_timeout" => {
                    let secs: u64 = v
                        .parse()
                        .map_err(|_| bad(format!("invalid connect_timeout {v:?}")))?;
                    cfg.connect_timeout = (secs > 0).then(|| Duration::from_secs(secs));
                }
                "sslmode" => match v.as_str() {
                    "disable" | "allow" | "prefer" => {}
                    other => {
                        return Err(bad(format!(
                            "sslmode={other} needs TLS, which this client does not speak"
                        )))
                    }
                },
                "gssencmode"
                | "keepalives"
                | "keepalives_idle"
                | "keepalives_interval"
                | "keepalives_count"
                | "target_session_attrs"
                | "fallback_application_name"
                | "replication" => {}
                other => return Err(bad(format!("unknown connection option {other:?}"))),
            }
        }
        if let Some(h) = host {
            if h.contains(',') {
                return Err(bad("several hosts are not supported"));
            }
            cfg.host = if h.starts_with('/') {
                Host::Unix(PathBuf::from(h))
            } else if h.is_empty() {
                Host::Tcp("localhost".to_owned())
            } else {
                Host::Tcp(h)
            };
        }
        if let Some(p) = port {
            cfg.port = p;
        }
        cfg.user = match user {
            Some(u) if !u.is_empty() => u,
            _ => return Err(bad("no user given")),
        };
        Ok(cfg)
    }
}

fn bad(msg: impl Into<String>) -> ClientError {
    ClientError::Config(msg.into())
}

impl FromStr for Config {
    type Err = ClientError;

    fn from_str(s: &str) -> Result<Config, ClientError> {
        let s = s.trim();
        if let Some(rest) = s
            .strip_prefix("postgresql://")
            .or_else(|| s.strip_prefix("postgres://"))
        {
            Config::from_pairs(parse_uri(rest)?)
        } else {
            Config::from_pairs(parse_keyword_value(s)?)
        }
    }
}

/// `key = value` pairs separated by whitespace.
fn parse_keyword_value(s: &str) -> Result<Vec<(String, String)>, ClientError> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(bad(format!("missing \"=\" after {key:?}")));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    None => return Err(bad(format!("unterminated quoted value of {key:?}"))),
                    Some('\'') => break,
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => return Err(bad(format!("unterminated quoted value of {key:?}"))),
                    },
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    if let Some(e) = chars.next() {
                        value.push(e);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        out.push((key, value));
    }
}

/// The part of a URI after `postgresql://`.
fn parse_uri(rest: &str) -> Result<Vec<(String, String)>, ClientError> {
    let mut out = Vec::new();
    let (before_query, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (before_query, None),
    };
    let hostport = match authority.rsplit_once('@') {
        Some((userinfo, hp)) => {
            match userinfo.split_once(':') {
                Some((u, p)) => {
                    out.push(("user".to_owned(), percent_decode(u)?));
                    out.push(("password".to_owned(), percent_decode(p)?));
                }
                None => out.push(("user".to_owned(), percent_decode(userinfo)?)),
            }
            hp
        }
        None => authority,
    };
    if !hostport.is_empty() {
        let (h, p) = if let Some(inner) = hostport.strip_prefix('[') {
            let (h, after) = inner
                .split_once(']')
                .ok_or_else(|| bad("unterminated IPv6 address"))?;
            (h, after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if !h.is_empty() {
            out.push(("host".to_owned(), percent_decode(h)?));
        }
        if let Some(p) = p.filter(|p| !p.is_empty()) {
            out.push(("port".to_owned(), p.to_owned()));
        }
    }
    if let Some(db) = path.filter(|p| !p.is_empty()) {
        out.push(("dbname".to_owned(), percent_decode(db)?));
    }
    for kv in query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|s| !s.is_empty())
    {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| bad(format!("URI parameter {kv:?} has no value")))?;
        out.push((percent_decode(k)?, percent_decode(v)?));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Result<String, ClientError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| bad(format!("invalid percent-encoding in {s:?}")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad(format!("{s:?} does not decode to UTF-8")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyword_value() {
        let c: Config = "host=127.0.0.1 port=5433 user=postgres password='a b\\'c' dbname=x"
            .parse()
            .unwrap();
        assert_eq!(c.host, Host::Tcp("127.0.0.1".into()));
        assert_eq!(c.port, 5433);
        assert_eq!(c.user, "postgres");
        assert_eq!(c.password.as_deref(), Some("a b'c"));
        assert_eq!(c.dbname.as_deref(), Some("x"));
        assert!(!c.redacted().contains("a b"));
        let c: Config = "host = /tmp/sock user=u".parse().unwrap();
        assert_eq!(c.host, Host::Unix("/tmp/sock".into()));
        assert_eq!(c.address(), "/tmp/sock/.s.PGSQL.5432");
    }

    #[test]
    fn uri() {
        let c: Config = "postgresql://us%40r:p%3Ass@db.example:6000/my%20db?application_name=ps&connect_timeout=3"
            .parse()
            .unwrap();
        assert_eq!(c.user, "us@r");
        assert_eq!(c.password.as_deref(), Some("p:ss"));
        assert_eq!(c.host, Host::Tcp("db.example".into()));
        assert_eq!(c.port, 6000);
        assert_eq!(c.dbname.as_deref(), Some("my db"));
        assert_eq!(c.application_name.as_deref(), Some("ps"));
        assert_eq!(c.connect_timeout, Some(Duration::from_secs(3)));
        let c: Config = "postgres://u@[::1]:5/".parse().unwrap();
        assert_eq!(c.host, Host::Tcp("::1".into()));
        assert_eq!(c.port, 5);
    }

    #[test]
    fn errors_name_the_problem() {
        for (s, want) in [
            ("host=x", "no user"),
            ("user=u port=abc", "invalid port"),
            ("user=u bogus=1", "unknown connection option"),
            ("user=u password='x", "unterminated"),
            ("user=u sslmode=require", "TLS"),
            ("user", "missing"),
            ("postgresql://u@h/%zz", "percent"),
            ("user=u host=a,b", "several hosts"),
        ] {
            let e = s.parse::<Config>().unwrap_err().to_string();
            assert!(e.contains(want), "{s}: {e}");
        }
    }
}
