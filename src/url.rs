//! URLs wherever kiln meets them (spec values, lock files, uv's output): their parts,
//! and their credentials kept out of every message, snippet and log.
//!
//! One rule, RFC 3986's generic syntax (section 3.2): after `scheme://` the authority
//! runs to the first `/`, `?` or `#` (in free text also whitespace, except the tab and
//! carriage return that WHATWG readers drop from a URL); its userinfo is everything
//! before the authority's LAST `@`, so `https://alice:s3cret@tok3n@host/simple` has the
//! userinfo `alice:s3cret@tok3n` and the host `host`; the rest is the host and an
//! optional `:port`.
//!
//! Why not the `url` crate (WHATWG): kiln needs positions in the text as written (a
//! same-length mask keeps a snippet's caret and BuildKit's ranges on their column; uv's
//! output and messages hold URLs amid other words), where the crate gives a normalised
//! serialisation of one URL. And WHATWG reads `\` as `/`, so its userinfo can end
//! before what an RFC 3986 reader (apt, Go's `net/url` in BuildKit, curl) takes as
//! userinfo: a mask cut at its positions would show the rest. Within a line this rule
//! never stops earlier than either reading, so its mask covers both. The hosts kiln
//! compares (netrc machines, PyPI's file host) are ASCII names: lowercasing them is all
//! the normalisation needed.

use std::ops::Range;

/// One URL split by the rule above: each part as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Url<'a> {
    /// Before `://`, as written (`https`, `git+https`).
    pub scheme: &'a str,
    /// Before the authority's last `@`; `None` without an `@`.
    pub userinfo: Option<&'a str>,
    /// As written: a name, an IPv4 address or a bracketed IPv6 one.
    pub host: &'a str,
    /// The digits after the host's `:`, when there is one.
    pub port: Option<&'a str>,
    /// The path, query and fragment: everything after the authority.
    pub rest: &'a str,
}

impl<'a> Url<'a> {
    /// `text` split into its parts, with no check of what they hold; `None` when it has no
    /// `scheme://`. For URLs written by a tool (a lock's files): kiln only reads them.
    pub fn split(text: &'a str) -> Option<Url<'a>> {
        let (scheme, after) = text.split_once("://")?;
        let end = authority_end(after);
        let (authority, rest) = after.split_at(end);
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
            None => (None, authority),
        };
        let (host, port) = match hostport.strip_prefix('[') {
            // `[v6]` or `[v6]:port`: the address holds colons of its own.
            Some(_) => match hostport.find(']') {
                Some(close) => {
                    let (host, tail) = hostport.split_at(close + 1);
                    (host, tail.strip_prefix(':'))
                }
                None => (hostport, None),
            },
            None => match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            },
        };
        Some(Url {
            scheme,
            userinfo,
            host,
            port,
            rest,
        })
    }

    /// `text` as one well-formed URL, for a value kiln writes into a build: a scheme of
    /// letters, digits, `+`, `-` and `.` starting with a letter; a host that is a name or
    /// address (RFC 3986 `reg-name` characters, or `[...]`); a port of 1 to 65535; none
    /// of the characters RFC 3986 leaves out of URIs (whitespace, controls, `"<>\^`{|}`),
    /// which readers treat differently (WHATWG reads `\` as `/`). Errors: what is wrong,
    /// without the URL.
    pub fn parse(text: &'a str) -> Result<Url<'a>, &'static str> {
        let url = Url::split(text).ok_or("not a URL (no scheme://)")?;
        if text
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "\"<>\\^`{|}".contains(c))
        {
            return Err(
                "whitespace, control characters and any of \"<>\\^`{|} are not allowed in a URL",
            );
        }
        let scheme_ok = url.scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && url
                .scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !scheme_ok {
            return Err("not a valid URL scheme");
        }
        let host_ok = match url.host.strip_prefix('[') {
            Some(v6) => v6.strip_suffix(']').is_some_and(|a| {
                !a.is_empty() && a.chars().all(|c| c.is_ascii_hexdigit() || ":.".contains(c))
            }),
            None => {
                !url.host.is_empty()
                    && url
                        .host
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-._~%!$&'()*+,;=".contains(c))
            }
        };
        if !host_ok {
            return Err("not a valid host");
        }
        if let Some(p) = url.port
            && !(p.bytes().all(|b| b.is_ascii_digit()) && matches!(p.parse::<u16>(), Ok(1..)))
        {
            return Err("not a valid port");
        }
        Ok(url)
    }

    /// The host in lowercase (host names are case-insensitive), without the port.
    pub fn host(&self) -> String {
        self.host.to_ascii_lowercase()
    }

    /// `host` or `host:port`, the host in lowercase: what names an index for
    /// `Url::fetch_risk`'s exceptions.
    pub fn host_port(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host()),
            None => self.host(),
        }
    }

    /// Why the engine should not fetch this URL itself, or `None`. The engine fetches HTTP
    /// sources from its own host's network, where the daemon's API, a cloud's metadata
    /// service and other local services answer: plain `http` (no TLS: anyone on the path
    /// chooses the bytes until the digest check), or a host that is a loopback, link-local
    /// or unspecified address, or `localhost`. Names are not resolved: one that resolves
    /// to such an address is not caught here.
    pub fn fetch_risk(&self) -> Option<&'static str> {
        use std::net::IpAddr;
        let host = self.host();
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let address = bare.parse::<IpAddr>().ok().map(|a| match a {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4),
            v4 => v4,
        });
        let risky_address = address.and_then(|a| match a {
            _ if a.is_loopback() => Some("a loopback address"),
            _ if a.is_unspecified() => Some("an unspecified address"),
            IpAddr::V4(v4) if v4.is_link_local() => Some("a link-local address"),
            IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80 => Some("a link-local address"),
            _ => None,
        });
        if let Some(why) = risky_address {
            return Some(why);
        }
        if host == "localhost" || host.ends_with(".localhost") {
            return Some("the local host");
        }
        (self.scheme != "https").then_some("plain http")
    }

    /// Whether the URL carries userinfo (`user:token@`), credentials as a rule.
    pub fn has_userinfo(&self) -> bool {
        self.userinfo.is_some()
    }
}

/// The host of `url` in lowercase (see [`Url::host`]); `None` without `scheme://`.
pub fn host(url: &str) -> Option<String> {
    Url::split(url).map(|u| u.host())
}

/// Whether any URL in `text` (a value, a line, a message) carries userinfo.
pub fn has_userinfo(text: &str) -> bool {
    userinfo_spans(text).next().is_some()
}

/// `url` with its userinfo shown as `***` (`https://***@host/simple`), for a message that
/// names the URL. The same as [`redact_text`]: a value that is not quite one URL (a
/// requirement, a script) loses the userinfo of each URL in it.
pub fn redact(url: &str) -> String {
    redact_text(url)
}

/// `text` with the userinfo of every URL in it shown as `***` (uv's stderr, messages).
pub fn redact_text(text: &str) -> String {
    replace_userinfo(text, |_| "***".to_string())
}

/// `text` with each character of every URL's userinfo replaced by `*`: the same number
/// of characters on every line, so a line:column still points at the same place (for
/// spec text shown as a snippet or sent to BuildKit with a range into it).
pub fn mask_text(text: &str) -> String {
    replace_userinfo(text, |userinfo| "*".repeat(userinfo.chars().count()))
}

/// The first URL in `text` that carries userinfo, redacted, for naming it in a message.
pub fn first_with_userinfo(text: &str) -> Option<String> {
    let span = userinfo_spans(text).next()?;
    let start = text[..span.start]
        .rfind("://")
        .map(|i| scheme_start(text, i))
        .unwrap_or(span.start);
    let end = span.end + authority_end(&text[span.end..]);
    let end = end
        + text[end..]
            .find(|c: char| c.is_whitespace() || "\"'`<>".contains(c))
            .unwrap_or(text.len() - end);
    Some(redact_text(&text[start..end]))
}

/// Where the authority that starts `after` (the text after `://`) ends.
fn authority_end(after: &str) -> usize {
    after
        .find(|c: char| {
            matches!(c, '/' | '?' | '#') || (c.is_whitespace() && !matches!(c, '\t' | '\r'))
        })
        .unwrap_or(after.len())
}

/// Where the scheme before the `://` at `sep` starts in `text`.
fn scheme_start(text: &str, sep: usize) -> usize {
    text[..sep]
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
        .map_or(0, |i| i + 1)
}

/// The byte range of each non-empty userinfo in `text`, in order: each `://` starts an
/// authority (see the module's rule).
fn userinfo_spans(text: &str) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut from = 0;
    std::iter::from_fn(move || {
        loop {
            let start = text[from..].find("://")? + from + 3;
            from = start;
            let authority = &text[start..start + authority_end(&text[start..])];
            if let Some(at) = authority.rfind('@').filter(|at| *at > 0) {
                return Some(start..start + at);
            }
        }
    })
}

fn replace_userinfo(text: &str, with: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(text.len());
    let mut done = 0;
    for span in userinfo_spans(text) {
        out.push_str(&text[done..span.start]);
        out.push_str(&with(&text[span.clone()]));
        done = span.end;
    }
    out.push_str(&text[done..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NESTED: &str = "https://alice:s3cret@tok3n@host/simple";

    fn secret_free(s: &str) -> bool {
        !["alice", "s3cret", "tok3n"].iter().any(|w| s.contains(w))
    }

    #[test]
    fn the_userinfo_runs_to_the_last_at_of_the_authority() {
        let u = Url::split(NESTED).unwrap();
        assert_eq!(u.userinfo, Some("alice:s3cret@tok3n"));
        assert_eq!((u.host, u.port, u.rest), ("host", None, "/simple"));
        assert_eq!(redact(NESTED), "https://***@host/simple");
        assert!(secret_free(&redact(NESTED)));
        assert_eq!(mask_text(NESTED), "https://******************@host/simple");
        assert_eq!(mask_text(NESTED).len(), NESTED.len());
        // An `@` in the path, query or fragment is no userinfo.
        for plain in ["https://host/a@b", "https://host?u=a@b", "https://host#a@b"] {
            assert!(!Url::split(plain).unwrap().has_userinfo(), "{plain}");
            assert_eq!(redact(plain), plain);
        }
    }

    #[test]
    fn parts_of_a_url() {
        let u = Url::split("HTTPS://Bob:pw@PyPI.Example.com:8443/simple/?x#y").unwrap();
        assert_eq!(u.scheme, "HTTPS");
        assert_eq!(u.userinfo, Some("Bob:pw"));
        assert_eq!(u.host(), "pypi.example.com");
        assert_eq!(u.port, Some("8443"));
        assert_eq!(u.rest, "/simple/?x#y");
        let v6 = Url::split("http://[::1]:8080/x").unwrap();
        assert_eq!((v6.host, v6.port), ("[::1]", Some("8080")));
        assert_eq!(Url::split("http://[::1]").unwrap().port, None);
        assert_eq!(
            host("git+https://tok@github.com/o/r"),
            Some("github.com".into())
        );
        assert_eq!(host("no scheme here"), None);
        assert_eq!(Url::split("https://host").unwrap().rest, "");
    }

    #[test]
    fn parse_refuses_what_readers_would_read_differently() {
        assert!(Url::parse("https://pypi.example.com/simple").is_ok());
        assert!(Url::parse("http://127.0.0.1:9/simple").is_ok());
        assert!(Url::parse("https://[2001:db8::1]:443/x").is_ok());
        assert!(Url::parse("git+https://github.com/o/r@v1").is_ok());
        for bad in [
            "pypi.example.com/simple",
            "https:///simple",
            "https://ho st/",
            "https://host/a b",
            "https://host\t/",
            "https://host\\@evil/",
            "https://host:0/",
            "https://host:99999/",
            "https://host:/",
            "https://host:x/",
            "https://[zz]/",
            "https://[::1/",
            "1http://host/",
            "ht tp://host/",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
        // Credentials parse (the caller decides): they are a URL's own part.
        assert!(Url::parse(NESTED).unwrap().has_userinfo());
    }

    #[test]
    fn every_url_in_free_text_loses_its_userinfo() {
        let text = "error: GET https://u:tok@pypi.example.com/simple/x/ failed; see http://a@b/c\n\
                    pkg @ git+https://tok3n@github.com/o/r, mail bob@example.com";
        let r = redact_text(text);
        assert_eq!(
            r,
            "error: GET https://***@pypi.example.com/simple/x/ failed; see http://***@b/c\n\
             pkg @ git+https://***@github.com/o/r, mail bob@example.com"
        );
        assert!(has_userinfo(text));
        assert!(!has_userinfo(&r.replace("***@", "")));
        // Two URLs with nothing between them, YAML flow style, a URL at the end.
        let flow = r#"urls: ["https://h","https://alice:s3cret@tok3n@h2/x", 'ssh://git:pw@h3']"#;
        let masked = mask_text(flow);
        assert!(secret_free(&masked), "{masked}");
        assert!(!masked.contains("pw@"), "{masked}");
        assert_eq!(masked.chars().count(), flow.chars().count());
        assert!(secret_free(&redact_text(flow)));
        // A tab inside a URL (WHATWG readers drop it) does not end its authority.
        assert_eq!(mask_text("x https://us\ter:pw@h/"), "x https://********@h/");
        // Nothing that is not a URL changes.
        for plain in ["a@b", "mail bob@example.com", "://@x", "https://@host/"] {
            assert_eq!(redact_text(plain), plain);
            assert_eq!(mask_text(plain), plain);
        }
    }

    #[test]
    fn a_mask_keeps_every_line_and_column() {
        let text = "a: 1\nurl: https://b\u{f6}b:p\u{e4}ss@h/x  # and http://x:y@z\n";
        let masked = mask_text(text);
        assert_eq!(
            masked,
            "a: 1\nurl: https://********@h/x  # and http://***@z\n"
        );
        for (a, b) in text.lines().zip(masked.lines()) {
            assert_eq!(a.chars().count(), b.chars().count());
        }
    }

    #[test]
    fn the_first_url_with_credentials_is_named_redacted() {
        assert_eq!(
            first_with_userinfo(
                "pkg @ https://alice:s3cret@tok3n@host/x.whl ; python_version > '3'"
            )
            .as_deref(),
            Some("https://***@host/x.whl")
        );
        assert_eq!(
            first_with_userinfo("curl -fsS \"https://u:p@h.example/f?a=1\" -o f").as_deref(),
            Some("https://***@h.example/f?a=1")
        );
        assert_eq!(first_with_userinfo("https://h/x a@b"), None);
        assert_eq!(
            first_with_userinfo(NESTED).as_deref(),
            Some("https://***@host/simple")
        );
    }
}
