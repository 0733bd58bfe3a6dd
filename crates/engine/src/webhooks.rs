//! Webhook destinations and signatures, without I/O.
//!
//! - [`check_url`]: the server-side-request-forgery rule. A webhook URL is an
//!   `http`/`https` URL whose host is a public address, or a name that
//!   resolves only to public addresses; loopback, private, link-local,
//!   CGNAT, multicast, unspecified, reserved and documentation ranges are
//!   refused, also inside IPv4-mapped, IPv4-compatible, NAT64 and 6to4 IPv6
//!   forms. The operator's allow-list (Spin variable
//!   `webhook_allowed_hosts`: `host` or `host:port`, comma-separated) lets
//!   named destinations through. Checked when an operation is accepted and
//!   again, with the addresses the name resolves to, when a delivery is sent
//!   (the caller resolves; the core cannot).
//! - [`signature`]: Standard Webhooks signing (`v1,` + base64 HMAC-SHA256 of
//!   `{id}.{timestamp}.{body}`), secrets `whsec_` + base64 of 32 bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The operator's allow-list: `host` (any port) or `host:port` entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    entries: Vec<(String, Option<u16>)>,
}

impl AllowList {
    /// Parse `webhook_allowed_hosts` (comma-separated; blanks ignored;
    /// `[v6]:port` for IPv6 literals).
    pub fn parse(s: &str) -> AllowList {
        let entries = s
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|e| {
                let e = e.to_ascii_lowercase();
                // `host:port`, `[::1]:port`, `[::1]`, `host`.
                if let Some(rest) = e.strip_prefix('[') {
                    if let Some((h, tail)) = rest.split_once(']') {
                        let port = tail.strip_prefix(':').and_then(|p| p.parse().ok());
                        return (h.to_string(), port);
                    }
                }
                match e.rsplit_once(':') {
                    Some((h, p)) if !h.contains(':') => match p.parse() {
                        Ok(p) => (h.to_string(), Some(p)),
                        Err(_) => (e.clone(), None),
                    },
                    _ => (e, None),
                }
            })
            .collect();
        AllowList { entries }
    }

    /// Whether `host` (as the URL spells it, lowercase, IPv6 without
    /// brackets) on `port` is allowed.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.entries
            .iter()
            .any(|(h, p)| h == host && p.is_none_or(|p| p == port))
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Where a checked webhook URL goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub url: url::Url,
    /// The host as the URL spells it (lowercase; IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// The operator's allow-list names it: no address rule applies.
    pub allowed: bool,
    /// The host is an IP literal (nothing to resolve).
    pub literal: Option<IpAddr>,
}

/// Check a webhook URL's form and, for IP literals and reserved names, its
/// address. A host name that is not reserved passes here; the sender must
/// still check what it resolves to with [`check_resolved`].
pub fn check_url(raw: &str, allow: &AllowList) -> Result<Destination, String> {
    if raw.len() > 2048 {
        return Err("a webhook URL has at most 2048 characters".into());
    }
    let url = url::Url::parse(raw).map_err(|e| format!("{raw:?} is not a valid URL: {e}"))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(format!("{raw:?}: a webhook URL is http or https"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{raw:?}: a webhook URL carries no credentials"));
    }
    let (host, literal) = match url.host() {
        Some(url::Host::Domain(d)) => (d.to_ascii_lowercase(), None),
        Some(url::Host::Ipv4(a)) => (a.to_string(), Some(IpAddr::V4(a))),
        Some(url::Host::Ipv6(a)) => (a.to_string(), Some(IpAddr::V6(a))),
        None => return Err(format!("{raw:?}: a webhook URL names a host")),
    };
    let port = url.port_or_known_default().unwrap_or(80);
    let allowed = allow.allows(&host, port);
    if !allowed {
        if let Some(ip) = literal {
            check_ip(ip).map_err(|rule| refused(raw, &ip.to_string(), rule))?;
        } else {
            let h = host.trim_end_matches('.');
            if h == "localhost" || h.ends_with(".localhost") {
                return Err(refused(raw, &host, "loopback"));
            }
            if !h.contains('.') {
                return Err(format!(
                    "{raw:?}: webhook host {host:?} is not a public DNS name \
                     (a single label resolves inside a private network); an operator \
                     may allow it with the Spin variable webhook_allowed_hosts"
                ));
            }
        }
    }
    Ok(Destination {
        url,
        host,
        port,
        allowed,
        literal,
    })
}

/// Check the addresses a destination's host resolved to: every one must be
/// public, unless the destination is allowed.
pub fn check_resolved(d: &Destination, addrs: &[IpAddr]) -> Result<(), String> {
    if d.allowed {
        return Ok(());
    }
    if addrs.is_empty() {
        return Err(format!("webhook host {:?} resolves to no address", d.host));
    }
    for a in addrs {
        check_ip(*a).map_err(|rule| {
            format!(
                "webhook host {:?} resolves to {a}, a {rule} address; an operator \
                 may allow it with the Spin variable webhook_allowed_hosts",
                d.host
            )
        })?;
    }
    Ok(())
}

fn refused(raw: &str, addr: &str, rule: &str) -> String {
    format!(
        "{raw:?}: webhook host {addr} is a {rule} address, and webhooks go to public \
         addresses only; an operator may allow it with the Spin variable webhook_allowed_hosts"
    )
}

/// `Ok` for a public unicast address; else the rule it breaks.
pub fn check_ip(ip: IpAddr) -> Result<(), &'static str> {
    match ip {
        IpAddr::V4(a) => check_v4(a),
        IpAddr::V6(a) => check_v6(a),
    }
}

fn check_v4(a: Ipv4Addr) -> Result<(), &'static str> {
    let [o0, o1, o2, _] = a.octets();
    let rule = if a.is_loopback() {
        "loopback"
    } else if a.is_unspecified() || o0 == 0 {
        "unspecified (\"this network\")"
    } else if a.is_private() {
        "private"
    } else if a.is_link_local() {
        "link-local"
    } else if o0 == 100 && (o1 & 0xc0) == 64 {
        "shared (CGNAT)"
    } else if a.is_multicast() {
        "multicast"
    } else if a.is_broadcast() || o0 >= 240 {
        "reserved"
    } else if a.is_documentation() || (o0 == 198 && (o1 & 0xfe) == 18) {
        "documentation or benchmarking"
    } else if o0 == 192 && o1 == 0 && o2 == 0 {
        "IETF protocol assignment"
    } else {
        return Ok(());
    };
    Err(rule)
}

fn check_v6(a: Ipv6Addr) -> Result<(), &'static str> {
    let s = a.segments();
    // IPv4 inside IPv6: mapped (::ffff:a.b.c.d), compatible (::a.b.c.d),
    // NAT64 (64:ff9b::/96) and 6to4 (2002:AABB:CCDD::/48).
    if let Some(v4) = a.to_ipv4_mapped() {
        return check_v4(v4);
    }
    if s[0..6] == [0; 6] && !(s[6] == 0 && s[7] <= 1) {
        return check_v4(Ipv4Addr::new(
            (s[6] >> 8) as u8,
            s[6] as u8,
            (s[7] >> 8) as u8,
            s[7] as u8,
        ));
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4] {
        return check_v4(Ipv4Addr::new(
            (s[6] >> 8) as u8,
            s[6] as u8,
            (s[7] >> 8) as u8,
            s[7] as u8,
        ));
    }
    if s[0] == 0x2002 {
        return check_v4(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    let rule = if a.is_loopback() {
        "loopback"
    } else if a.is_unspecified() {
        "unspecified"
    } else if (s[0] & 0xfe00) == 0xfc00 {
        "private (unique local)"
    } else if (s[0] & 0xffc0) == 0xfe80 || (s[0] & 0xffc0) == 0xfec0 {
        "link-local"
    } else if a.is_multicast() {
        "multicast"
    } else if s[0] == 0x2001 && s[1] == 0x0db8 {
        "documentation"
    } else if s[0] == 0x0100 && s[1..4] == [0; 3] {
        "discard-only"
    } else {
        return Ok(());
    };
    Err(rule)
}

/// A fresh signing secret from 32 random bytes: `whsec_` + base64.
pub fn new_secret(bytes: &[u8; 32]) -> String {
    use base64::Engine as _;
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// The Standard Webhooks signature of one delivery under `secret`
/// (`whsec_…`): `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")).
pub fn signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .unwrap_or_else(|_| secret.as_bytes().to_vec());
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", b64.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refuse(u: &str) -> String {
        check_url(u, &AllowList::default()).unwrap_err()
    }

    #[test]
    fn public_urls_pass() {
        for u in [
            "https://hooks.example.com/x",
            "http://93.184.216.34:8080/h",
            "https://[2606:2800:220:1:248:1893:25c8:1946]/",
        ] {
            check_url(u, &AllowList::default()).unwrap();
        }
    }

    #[test]
    fn internal_addresses_are_refused_naming_the_rule() {
        for (u, rule) in [
            ("http://127.0.0.1:8777/hook", "loopback"),
            ("http://localhost/x", "loopback"),
            ("http://api.localhost/x", "loopback"),
            ("http://0x7f.1/x", "loopback"),
            ("http://2130706433/x", "loopback"),
            ("http://10.1.2.3/", "private"),
            ("http://172.16.0.1/", "private"),
            ("http://192.168.1.1/", "private"),
            ("http://169.254.169.254/latest/meta-data", "link-local"),
            ("http://100.64.0.1/", "CGNAT"),
            ("http://224.0.0.1/", "multicast"),
            ("http://0.0.0.0/", "unspecified"),
            ("http://[::1]/", "loopback"),
            ("http://[::ffff:127.0.0.1]/", "loopback"),
            ("http://[::ffff:169.254.169.254]/", "link-local"),
            ("http://[::10.0.0.1]/", "private"),
            ("http://[64:ff9b::a9fe:a9fe]/", "link-local"),
            ("http://[2002:c0a8:0101::1]/", "private"),
            ("http://[fd00::1]/", "unique local"),
            ("http://[fe80::1]/", "link-local"),
            ("http://[ff02::1]/", "multicast"),
        ] {
            let e = refuse(u);
            assert!(e.contains(rule), "{u}: {e}");
            assert!(e.contains("webhook_allowed_hosts"), "{u}: {e}");
        }
        assert!(refuse("ftp://example.com/").contains("http or https"));
        assert!(refuse("http://user:pw@example.com/").contains("credentials"));
        assert!(refuse("http://intranet/").contains("single label"));
    }

    #[test]
    fn the_allow_list_lets_named_hosts_and_ports_through() {
        let allow = AllowList::parse(" 127.0.0.1:8777 , hooks.internal,[::1]:9000");
        assert!(
            check_url("http://127.0.0.1:8777/h", &allow)
                .unwrap()
                .allowed
        );
        assert!(check_url("http://127.0.0.1:8778/h", &allow).is_err());
        assert!(
            check_url("http://hooks.internal:1/h", &allow)
                .unwrap()
                .allowed
        );
        assert!(check_url("http://[::1]:9000/", &allow).unwrap().allowed);
        assert!(check_url("http://[::1]:9001/", &allow).is_err());
    }

    #[test]
    fn resolved_addresses_must_all_be_public() {
        let d = check_url("https://hooks.example.com/", &AllowList::default()).unwrap();
        let public: IpAddr = "93.184.216.34".parse().unwrap();
        let inner: IpAddr = "10.0.0.5".parse().unwrap();
        check_resolved(&d, &[public]).unwrap();
        let e = check_resolved(&d, &[public, inner]).unwrap_err();
        assert!(e.contains("resolves to 10.0.0.5, a private address"), "{e}");
        assert!(check_resolved(&d, &[]).is_err());
    }

    #[test]
    fn signatures_match_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification.
        let sig = signature(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
