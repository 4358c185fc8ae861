//! Quoting for the few steps that need a shell (apt, installers). Every string from a
//! spec that reaches a script goes through `quote`, so it is one literal word.

/// `s` as a single POSIX shell word.
pub fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:+@%,".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

pub fn join(words: &[String]) -> String {
    words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// The shell itself must read each hostile string back as exactly one word.
    #[test]
    fn hostile_strings_survive_sh() {
        let hostile = [
            "a b",
            "$(id)",
            "`id`",
            "x'y",
            "'",
            "\"",
            "a;rm -rf /",
            "$HOME",
            "\\n",
            "*",
            "-e",
            "",
            "a\nb",
            "${X:-y}",
            "|&><",
        ];
        for h in hostile {
            let out = Command::new("sh")
                .arg("-c")
                .arg(format!("printf '%s' {}", quote(h)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), h, "quoting {h:?}");
        }
    }
}
