//! Checks on single values: names, paths, image references, durations. Pure functions,
//! so the rules are easy to read and test in one place.

pub fn is_env_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub fn is_variant_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

pub fn is_image_name_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
}

/// A PEP 508 project name (also the form of PEP 685 extras and PEP 735 group names):
/// letters and digits, with `.`, `_`, `-` inside.
pub fn is_package_name(s: &str) -> bool {
    let ends_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    s.len() <= 128
        && ends_ok(s.chars().next())
        && ends_ok(s.chars().last())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Debian policy: name `[a-z0-9][a-z0-9+.-]+`, then optionally `:arch` and `=version`.
pub fn is_apt_package(s: &str) -> bool {
    let (name_arch, version) = match s.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (s, None),
    };
    let (name, arch) = match name_arch.split_once(':') {
        Some((n, a)) => (n, Some(a)),
        None => (name_arch, None),
    };
    let name_ok = name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '+' | '-' | '.'));
    let arch_ok = arch.is_none_or(|a| {
        !a.is_empty()
            && a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    });
    let version_ok = version.is_none_or(|v| {
        !v.is_empty()
            && v.starts_with(|c: char| c.is_ascii_digit())
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-' | '~' | ':'))
    });
    name_ok && arch_ok && version_ok
}

pub fn is_python_version(s: &str) -> bool {
    let mut parts = s.split('.');
    let ok = |p: Option<&str>| {
        p.is_some_and(|p| !p.is_empty() && p.len() <= 3 && p.chars().all(|c| c.is_ascii_digit()))
    };
    ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
}

pub fn is_plain_version(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '.')
}

pub fn is_user_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

pub fn is_secret_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

pub fn is_signal(s: &str) -> bool {
    if let Ok(n) = s.parse::<u32>() {
        return (1..=64).contains(&n);
    }
    s.strip_prefix("SIG").is_some_and(|r| {
        !r.is_empty()
            && r.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '+' || c == '-')
    })
}

/// A path inside the build context: relative, no `..`, normalised (no `./`, no trailing `/`).
pub fn context_path(s: &str) -> Result<String, &'static str> {
    if s.starts_with('/') {
        return Err("absolute paths are not allowed");
    }
    if s.contains('\\') {
        return Err("use '/' as the separator");
    }
    if s.chars().any(|c| c.is_control()) {
        return Err("control characters are not allowed");
    }
    let mut parts = Vec::new();
    for p in s.split('/') {
        match p {
            "" | "." => {}
            ".." => return Err("`..` would leave the build context"),
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err("the path names the whole context; name a file or directory");
    }
    Ok(parts.join("/"))
}

/// A repository key's context path, which kiln writes into the apt source's options
/// (`deb [signed-by=/kiln/apt-keys/PATH] ...`): only letters, digits and `._+-/`, so no
/// space, `]`, `=` or `,` can add an option (`trusted=yes`) or a second keyring.
pub fn apt_key_path(s: &str) -> Result<(), &'static str> {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '/'))
    {
        Ok(())
    } else {
        Err(
            "a key path has letters, digits, '.', '_', '-', '+' and '/' only (it is written into the apt source's options)",
        )
    }
}

/// An absolute path in the image, normalised lexically: no empty or `.` segments, no
/// trailing `/` (`/./`, `//etc`, `/etc/.` are `/`, `/etc`, `/etc`), so every later check
/// sees the one spelling. `..` is refused rather than resolved.
pub fn abs_path(s: &str) -> Result<String, &'static str> {
    if !s.starts_with('/') {
        return Err("must be absolute");
    }
    if s.split('/').any(|p| p == "..") {
        return Err("`..` is not allowed");
    }
    if s.chars().any(|c| c.is_control()) {
        return Err("control characters are not allowed");
    }
    let parts: Vec<&str> = s
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    Ok(format!("/{}", parts.join("/")))
}

/// One PEP 508 requirement; pip options and anything that is not a requirement are refused.
pub fn requirement_line(s: &str) -> Result<(), &'static str> {
    let t = s.trim();
    if t.starts_with('-') {
        return Err("pip options are not requirements");
    }
    if s.chars().any(|c| c.is_control()) {
        return Err("control characters (newlines) are not allowed");
    }
    if !t.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err("a requirement starts with a package name");
    }
    if t.chars()
        .any(|c| matches!(c, '`' | '$' | '|' | '&' | '\\' | '{' | '}'))
    {
        return Err("shell metacharacters have no place in a requirement");
    }
    Ok(())
}

/// A package index or apt archive URL kiln writes into the build: http(s), well formed
/// (`url::Url::parse`), without userinfo.
pub fn index_url(s: &str) -> Result<(), &'static str> {
    use crate::url::Url;
    let url = Url::split(s)
        .filter(|u| matches!(u.scheme, "https" | "http"))
        .ok_or("must start with https:// or http://")?;
    if url.has_userinfo() {
        return Err("credentials in the URL would be stored in the image's build definition");
    }
    Url::parse(s).map_err(|_| "not a valid URL")?;
    Ok(())
}

pub fn port(s: &str) -> Result<String, &'static str> {
    let (num, proto) = s.split_once('/').unwrap_or((s, "tcp"));
    if !matches!(proto, "tcp" | "udp" | "sctp") {
        return Err("protocol must be tcp, udp or sctp");
    }
    match num.parse::<u32>() {
        Ok(n) if (1..=65535).contains(&n) => Ok(format!("{n}/{proto}")),
        _ => Err("not a port number"),
    }
}

/// `30s`, `1m30s`, `500ms`, `1h` -> nanoseconds.
pub fn duration_ns(s: &str) -> Result<u64, &'static str> {
    let mut total: u64 = 0;
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err("empty duration");
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .ok_or("missing unit (s, m, h, ms)")?;
        if digits == 0 {
            return Err("expected a number");
        }
        let n: u64 = rest[..digits].parse().map_err(|_| "number too large")?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (1_000_000u64, 2)
        } else if rest.starts_with('s') {
            (1_000_000_000, 1)
        } else if rest.starts_with('m') {
            (60_000_000_000, 1)
        } else if rest.starts_with('h') {
            (3_600_000_000_000, 1)
        } else {
            return Err("unknown unit; use ms, s, m or h");
        };
        rest = &rest[len..];
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or("duration too long")?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apt_names() {
        for ok in [
            "libpq5",
            "g++",
            "libjpeg62-turbo",
            "python3.11-dev",
            "libc6:amd64",
            "curl=7.88.1-10+deb12u5",
        ] {
            assert!(is_apt_package(ok), "{ok}");
        }
        for bad in [
            "",
            "a",
            "Libpq",
            "libpq; rm -rf /",
            "-o",
            "x=",
            "$(id)",
            "pkg name",
        ] {
            assert!(!is_apt_package(bad), "{bad}");
        }
    }

    #[test]
    fn paths() {
        assert_eq!(context_path("./app/").unwrap(), "app");
        assert!(context_path("../etc").is_err());
        assert!(context_path("a/../../b").is_err());
        assert!(context_path("/etc/passwd").is_err());
        assert!(context_path(".").is_err());
    }

    #[test]
    fn absolute_paths_have_one_spelling() {
        for (written, normal) in [
            ("/", "/"),
            ("/./", "/"),
            ("//etc", "/etc"),
            ("/etc/.", "/etc"),
            ("/etc//ssl/./certs/", "/etc/ssl/certs"),
            ("/var/lib/worker", "/var/lib/worker"),
        ] {
            assert_eq!(abs_path(written).unwrap(), normal, "{written}");
        }
        assert!(abs_path("/etc/../etc").is_err());
        assert!(abs_path("etc").is_err());
        assert!(abs_path("/a\nb").is_err());
    }

    #[test]
    fn apt_key_paths_carry_no_options() {
        assert!(apt_key_path("keys/pgdg.asc").is_ok());
        for bad in [
            "keys/x.asc trusted=yes",
            "k]",
            "k[",
            "k=1",
            "a.asc,/etc/apt/trusted.gpg",
            "k\tx",
        ] {
            assert!(apt_key_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(duration_ns("30s").unwrap(), 30_000_000_000);
        assert_eq!(duration_ns("1m30s").unwrap(), 90_000_000_000);
        assert_eq!(duration_ns("250ms").unwrap(), 250_000_000);
        assert!(duration_ns("30").is_err());
        assert!(duration_ns("99999999999999999999h").is_err());
    }

    #[test]
    fn requirements_and_urls() {
        assert!(requirement_line("arq==0.26.1").is_ok());
        assert!(requirement_line("uvicorn[standard]>=0.30; python_version >= \"3.11\"").is_ok());
        assert!(requirement_line("--index-url http://evil").is_err());
        assert!(requirement_line("arq\nrm -rf /").is_err());
        assert!(requirement_line("x$(id)").is_err());
        assert!(index_url("https://pypi.example.com/simple").is_ok());
        assert!(index_url("https://user:tok@pypi.example.com/simple").is_err());
        assert!(index_url("ftp://x").is_err());
        assert_eq!(
            index_url("https://alice:s3cret@tok3n@host/simple"),
            Err("credentials in the URL would be stored in the image's build definition")
        );
        assert_eq!(index_url("https://host\\x/"), Err("not a valid URL"));
        assert_eq!(index_url("https://host:99999/"), Err("not a valid URL"));
    }
}
