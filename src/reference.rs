//! Image references (`python:3.12-slim`, `registry:5000/team/py@sha256:...`): the grammar
//! of Docker's distribution/reference, as far as kiln needs it to refuse a bad base early
//! and to name an image the way BuildKit does.

/// Checks `s` against the reference grammar, enough to refuse what BuildKit would refuse
/// later. Errors: a short reason (bad tag, bad digest, bad host, bad repository name).
pub fn validate(s: &str) -> Result<(), &'static str> {
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("spaces are not allowed");
    }
    let (name_tag, digest) = match s.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (s, None),
    };
    if let Some(d) = digest {
        let hex = d
            .strip_prefix("sha256:")
            .ok_or("digest must be sha256:<64 hex>")?;
        if hex.len() != 64
            || !hex
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        {
            return Err("digest must be sha256:<64 hex>");
        }
    }
    // A tag is after the last ':' that follows the last '/'.
    let slash = name_tag.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (name, tag) = match name_tag[slash..].rfind(':') {
        Some(i) => (&name_tag[..slash + i], Some(&name_tag[slash + i + 1..])),
        None => (name_tag, None),
    };
    if let Some(t) = tag
        && (t.is_empty()
            || t.len() > 128
            || !t
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            || t.starts_with(['.', '-']))
    {
        return Err("invalid tag");
    }
    let mut comps: Vec<&str> = name.split('/').collect();
    if comps.len() > 1 && (comps[0].contains(['.', ':']) || comps[0] == "localhost") {
        let host = comps.remove(0);
        if !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'))
        {
            return Err("invalid registry host");
        }
    }
    for c in comps {
        if !crate::spec::validate::is_image_name_part(c) || c.ends_with(['.', '_', '-']) {
            return Err("repository names use lowercase letters, digits and separators");
        }
    }
    Ok(())
}

/// The canonical form BuildKit uses: `docker.io/library/python:3.12-slim`.
pub fn normalize(s: &str) -> String {
    let (name_tag, digest) = match s.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (s, None),
    };
    let first = name_tag.split('/').next().unwrap_or("");
    let has_host = name_tag.contains('/') && (first.contains(['.', ':']) || first == "localhost");
    let mut out = if has_host {
        name_tag.to_string()
    } else if name_tag.contains('/') {
        format!("docker.io/{name_tag}")
    } else {
        format!("docker.io/library/{name_tag}")
    };
    let slash = out.rfind('/').unwrap_or(0);
    if !out[slash..].contains(':') && digest.is_none() {
        out.push_str(":latest");
    }
    if let Some(d) = digest {
        out.push('@');
        out.push_str(d);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images() {
        assert!(validate("python:3.12-slim").is_ok());
        assert!(validate("localhost:5000/team/py:3").is_ok());
        assert!(validate("Python:3").is_err());
        assert!(validate("python:").is_err());
        assert!(validate("py thon").is_err());
        assert_eq!(
            normalize("python:3.12-slim"),
            "docker.io/library/python:3.12-slim"
        );
        assert_eq!(
            normalize("kiln-local/python:3.11"),
            "docker.io/kiln-local/python:3.11"
        );
        assert_eq!(normalize("ghcr.io/a/b"), "ghcr.io/a/b:latest");
        assert_eq!(normalize("localhost:5000/a"), "localhost:5000/a:latest");
    }
}
