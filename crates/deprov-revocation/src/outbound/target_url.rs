//! Validation of a target URL (a relying party's `backchannel_logout_uri`, later an OP's
//! endpoints) when it is configured.
//!
//! Rules (DESIGN.md, "Security stance"):
//! - absolute `https` URL, no fragment (OpenID Connect Back-Channel Logout 1.0 §2.2: the
//!   URI "MAY include … query component … MUST NOT include a fragment component"), no
//!   user-info (credentials do not belong in a URL that is stored and displayed);
//! - `http`, loopback and private addresses only when the operator allows insecure targets
//!   (`DEPROV_ALLOW_INSECURE_TARGETS`, development and tests);
//! - link-local and cloud-metadata addresses refused always.
//!
//! A host name is checked here only by name; the address it resolves to is checked again
//! at connect time by the HTTP client ([`check_ip`]), which is what defeats DNS rebinding.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// Whether development-only destinations are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddressPolicy {
    /// Production: https only, public addresses only.
    #[default]
    Strict,
    /// `DEPROV_ALLOW_INSECURE_TARGETS=true`: http, loopback and private ranges allowed.
    AllowInsecure,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetUrlError {
    #[error("{0:?} is not an absolute URL: {1}")]
    Unparseable(String, String),
    #[error(
        "{0:?} must use https (http is allowed only with DEPROV_ALLOW_INSECURE_TARGETS=true, for development)"
    )]
    NotHttps(String),
    #[error("{0:?} must not contain a fragment (#…)")]
    Fragment(String),
    #[error("{0:?} must not contain a user name or password")]
    Credentials(String),
    #[error("{0:?} has no host")]
    NoHost(String),
    #[error("{url:?} points at {addr}, a {what} address, which deprov never calls")]
    Forbidden {
        url: String,
        addr: String,
        what: &'static str,
    },
    #[error(
        "{url:?} points at {addr}, a {what} address (allowed only with DEPROV_ALLOW_INSECURE_TARGETS=true, for development)"
    )]
    Insecure {
        url: String,
        addr: String,
        what: &'static str,
    },
}

/// Host names of cloud metadata services, refused like their addresses.
const METADATA_HOSTS: &[&str] = &[
    "metadata.google.internal",
    "metadata.goog",
    "metadata",
    "instance-data",
    "instance-data.ec2.internal",
];

pub fn validate_target_url(raw: &str, policy: AddressPolicy) -> Result<Url, TargetUrlError> {
    let url =
        Url::parse(raw).map_err(|e| TargetUrlError::Unparseable(raw.to_owned(), e.to_string()))?;
    match url.scheme() {
        "https" => {}
        "http" if policy == AddressPolicy::AllowInsecure => {}
        _ => return Err(TargetUrlError::NotHttps(raw.to_owned())),
    }
    if url.fragment().is_some() {
        return Err(TargetUrlError::Fragment(raw.to_owned()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(TargetUrlError::Credentials(raw.to_owned()));
    }
    match url.host() {
        None => return Err(TargetUrlError::NoHost(raw.to_owned())),
        Some(Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if METADATA_HOSTS.contains(&name.as_str()) {
                return Err(TargetUrlError::Forbidden {
                    url: raw.to_owned(),
                    addr: name,
                    what: "cloud metadata",
                });
            }
            if policy == AddressPolicy::Strict
                && (name == "localhost" || name.ends_with(".localhost"))
            {
                return Err(TargetUrlError::Insecure {
                    url: raw.to_owned(),
                    addr: name,
                    what: "loopback",
                });
            }
        }
        Some(Host::Ipv4(ip)) => check_ip(IpAddr::V4(ip), policy).map_err(|e| e.for_url(raw))?,
        Some(Host::Ipv6(ip)) => check_ip(IpAddr::V6(ip), policy).map_err(|e| e.for_url(raw))?,
    }
    Ok(url)
}

/// Why an address is refused; turned into a [`TargetUrlError`] with the URL by the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefusedAddress {
    #[error("{addr} is a {what} address, which deprov never calls")]
    Forbidden { addr: IpAddr, what: &'static str },
    #[error("{addr} is a {what} address (allowed only with DEPROV_ALLOW_INSECURE_TARGETS=true)")]
    Insecure { addr: IpAddr, what: &'static str },
}

impl RefusedAddress {
    fn for_url(self, url: &str) -> TargetUrlError {
        match self {
            RefusedAddress::Forbidden { addr, what } => TargetUrlError::Forbidden {
                url: url.to_owned(),
                addr: addr.to_string(),
                what,
            },
            RefusedAddress::Insecure { addr, what } => TargetUrlError::Insecure {
                url: url.to_owned(),
                addr: addr.to_string(),
                what,
            },
        }
    }
}

/// Checks one address: the literal in a URL, or what a host name resolved to at connect time.
pub fn check_ip(ip: IpAddr, policy: AddressPolicy) -> Result<(), RefusedAddress> {
    // An IPv4-mapped IPv6 address (::ffff:169.254.169.254) is the IPv4 address in disguise.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    if let Some(what) = forbidden(ip) {
        return Err(RefusedAddress::Forbidden { addr: ip, what });
    }
    if policy == AddressPolicy::Strict
        && let Some(what) = insecure(ip)
    {
        return Err(RefusedAddress::Insecure { addr: ip, what });
    }
    Ok(())
}

fn forbidden(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            if v4 == Ipv4Addr::new(100, 100, 100, 200) || v4 == Ipv4Addr::new(192, 0, 0, 192) {
                Some("cloud metadata")
            } else if v4.is_link_local() {
                // 169.254.0.0/16, which holds 169.254.169.254 (AWS, GCP, Azure, OpenStack).
                Some("link-local or cloud metadata")
            } else if v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast() {
                Some("unroutable")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if v6.segments() == [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254] {
                Some("cloud metadata")
            } else if (v6.segments()[0] & 0xffc0) == 0xfe80 {
                Some("link-local")
            } else if v6.is_unspecified() || v6.is_multicast() {
                Some("unroutable")
            } else {
                None
            }
        }
    }
}

fn insecure(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_private() {
                Some("private")
            } else if v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64 {
                Some("shared (carrier-grade NAT)")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if v6 == Ipv6Addr::LOCALHOST {
                Some("loopback")
            } else if (v6.segments()[0] & 0xfe00) == 0xfc00 {
                Some("private (unique local)")
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: AddressPolicy = AddressPolicy::Strict;
    const DEV: AddressPolicy = AddressPolicy::AllowInsecure;

    #[test]
    fn accepts_https_with_query_and_keeps_it() {
        let url = validate_target_url("https://app.example.com/bcl?tenant=a", STRICT);
        assert_eq!(
            url.map(|u| u.to_string()),
            Ok("https://app.example.com/bcl?tenant=a".to_owned())
        );
    }

    #[test]
    fn refuses_fragment_credentials_and_relative_urls() {
        assert!(matches!(
            validate_target_url("https://app.example.com/bcl#x", STRICT),
            Err(TargetUrlError::Fragment(_))
        ));
        assert!(matches!(
            validate_target_url("https://u:p@app.example.com/bcl", STRICT),
            Err(TargetUrlError::Credentials(_))
        ));
        assert!(matches!(
            validate_target_url("/bcl", STRICT),
            Err(TargetUrlError::Unparseable(..))
        ));
        assert!(matches!(
            validate_target_url("ftp://app.example.com/", DEV),
            Err(TargetUrlError::NotHttps(_))
        ));
    }

    #[test]
    fn http_and_loopback_only_when_insecure_targets_are_allowed() {
        assert!(matches!(
            validate_target_url("http://app.example.com/bcl", STRICT),
            Err(TargetUrlError::NotHttps(_))
        ));
        assert!(matches!(
            validate_target_url("https://127.0.0.1/bcl", STRICT),
            Err(TargetUrlError::Insecure { .. })
        ));
        assert!(matches!(
            validate_target_url("https://localhost/bcl", STRICT),
            Err(TargetUrlError::Insecure { .. })
        ));
        assert!(matches!(
            validate_target_url("https://10.1.2.3/bcl", STRICT),
            Err(TargetUrlError::Insecure { .. })
        ));
        assert!(validate_target_url("http://127.0.0.1:9000/bcl", DEV).is_ok());
        assert!(validate_target_url("http://[::1]:9000/bcl", DEV).is_ok());
    }

    #[test]
    fn metadata_and_link_local_are_refused_even_in_development() {
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://[fe80::1]/",
            "http://[fd00:ec2::254]/",
            "http://[::ffff:169.254.169.254]/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://100.100.100.200/",
        ] {
            assert!(
                matches!(
                    validate_target_url(url, DEV),
                    Err(TargetUrlError::Forbidden { .. })
                ),
                "{url}"
            );
        }
    }
}
