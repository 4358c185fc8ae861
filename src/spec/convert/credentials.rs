//! Credentials written into a URL anywhere in the spec: refused, never quoted.
//!
//! Every string the spec holds reaches the build definition (index URLs, requirements,
//! apt sources, scripts) or the image config (env, labels, commands), and from there a
//! registry and every log that prints them. So any key or value with a URL that carries
//! userinfo (`user:token@`) is an error at its position, naming the URL with the
//! userinfo redacted and saying where credentials go instead; the spec makes no build.

use super::Cx;
use crate::diag::Loc;
use crate::spec::yaml::{Node, Value};
use crate::url;

impl Cx {
    /// Check every key and string under `node` (the merged document, `${}` expanded; the
    /// `args` defaults as written). A value found here gets no other error: it would
    /// quote the URL again.
    pub(super) fn credentials(&mut self, node: &Node) {
        self.credentials_in(node, &mut vec![]);
    }

    fn credentials_in(&mut self, node: &Node, path: &mut Vec<String>) {
        match &node.value {
            Value::Str(s) => self.credential(s, node.loc, path),
            Value::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    path.push(format!("[{i}]"));
                    self.credentials_in(item, path);
                    path.pop();
                }
            }
            Value::Map(entries) => {
                for (k, v) in entries {
                    path.push(k.name.clone());
                    self.credential(&k.name, k.loc, path);
                    self.credentials_in(v, path);
                    path.pop();
                }
            }
            _ => {}
        }
    }

    fn credential(&mut self, text: &str, loc: Loc, path: &[String]) {
        let Some(shown) = url::first_with_userinfo(text) else {
            return;
        };
        let what = path.iter().fold(String::new(), |acc, p| {
            match (acc.is_empty(), p.starts_with('[')) {
                (true, _) | (_, true) => acc + p,
                (false, false) => acc + "." + p,
            }
        });
        let (carrier, help) = destination(path);
        self.err(
            loc,
            format!(
                "invalid {what} `{shown}`: credentials in the URL would be stored in {carrier}"
            ),
            help,
        );
        self.failed.insert(loc);
    }
}

/// Where a value under `path` ends up, and where its credentials belong instead.
fn destination(path: &[String]) -> (&'static str, &'static str) {
    // A variant's keys are the spec-wide ones: `variants.<name>.<key>`.
    let key = match path {
        [v, _, key, ..] if v == "variants" => key.as_str(),
        [key, ..] => key.as_str(),
        [] => "",
    };
    const NETRC: &str = "write the URL without them; put credentials in a netrc build secret (build_secrets.netrc), which pip and uv read";
    match key {
        "env" | "labels" | "entrypoint" | "cmd" | "healthcheck" | "description" | "name" => (
            "the image config",
            "write the URL without them; give the container its credentials when it starts (e.g. `docker run -e`), never in the image",
        ),
        "steps" => (
            "the image's build definition",
            "write the URL without them; give the step a build secret (`secrets: [id]` on a builder step, mounted at /run/secrets/<id>) and read them from there",
        ),
        "system" => (
            "the image's build definition",
            "write the URL without them; kiln gives apt no credentials, so use an archive (or a mirror of it) that needs none",
        ),
        "verify" => (
            "the image's build definition",
            "write the URL without them; verify commands get no credentials",
        ),
        _ => ("the image's build definition", NETRC),
    }
}
