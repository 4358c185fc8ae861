//! Image size, and what each image holds that a lean runtime image should not.

use std::collections::BTreeSet;

use super::{BASE, Bench, Mode};
use crate::report::{Row, Unit};

/// Run inside each image as root: `key=value` lines.
const PROBE: &str = r#"c=$(command -v gcc cc c++ make 2>/dev/null | tr "\n" " "); echo "compiler=${c:-none}"
if [ -e /root/.cache/pip ]; then echo "pipcache=$(du -sk /root/.cache/pip | cut -f1)KB"; else echo pipcache=absent; fi
echo "debs=$(ls /var/cache/apt/archives/*.deb 2>/dev/null | wc -l)"
echo "lists=$(find /var/lib/apt/lists -maxdepth 1 -type f ! -name lock 2>/dev/null | wc -l)"
echo "pg_headers=$([ -d /usr/include/postgresql ] && echo yes || echo no)"
echo "pyc=$(find /opt/venv /app -name "*.pyc" 2>/dev/null | wc -l)""#;

impl Bench {
    /// The size rows and the table of image contents.
    pub(super) fn images(&mut self) -> Result<(), String> {
        self.scenario("image size");
        self.restore_ctx()?;
        let variants: &[&str] = if self.mode == Mode::Full {
            &["minimal", "cuda"]
        } else {
            &["minimal"]
        };
        let base_pkgs = self.packages(BASE);
        self.report.inside = vec![
            "| image | size | compiler | -dev packages added to the base | /root/.cache/pip | .deb files / apt lists | libpq headers | .pyc files |".into(),
            "|---|---|---|---|---|---|---|---|".into(),
        ];
        for v in variants {
            self.run.build(self.kiln(&format!("size-kiln-{v}"), v));
            self.run.build(self.peer(&format!("size-peer-{v}"), v));
            let mut sizes = Vec::new();
            for tool in ["kiln", "peer"] {
                let image = format!("bench/{tool}:{v}");
                let mb = self.run.engine.image_size(&image).unwrap_or(0) as f64 / 1e6;
                // One decimal, as the table's MB cells are rounded from it.
                let mb = (mb * 10.0).round() / 10.0;
                sizes.push(mb);
                let info = self
                    .run
                    .engine
                    .output(&[
                        "run",
                        "--rm",
                        "-u",
                        "0",
                        "--entrypoint",
                        "sh",
                        &image,
                        "-c",
                        PROBE,
                    ])
                    .unwrap_or_default();
                let get = |key: &str| {
                    info.lines()
                        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                        .unwrap_or("")
                        .to_string()
                };
                let dev = dev_added(&base_pkgs, &self.packages(&image));
                self.report.inside.push(format!(
                    "| {tool} {v} | {mb:.0} MB | {} | {} | {} | {} / {} | {} | {} |",
                    get("compiler"),
                    if dev.is_empty() {
                        "none".into()
                    } else {
                        dev.join(" ")
                    },
                    get("pipcache"),
                    get("debs"),
                    get("lists"),
                    get("pg_headers"),
                    get("pyc")
                ));
            }
            self.row(Row::new(
                format!("image size, {v}"),
                Unit::Mb,
                &sizes[..1],
                &sizes[1..],
            ));
        }
        let base_mb = self.run.engine.image_size(BASE).unwrap_or(0) as f64 / 1e6;
        self.note(format!("The base image {BASE} is {base_mb:.0} MB."));
        Ok(())
    }

    /// The Debian packages installed in an image.
    fn packages(&self, image: &str) -> BTreeSet<String> {
        let out = self.run.engine.output(&[
            "run",
            "--rm",
            "--entrypoint",
            "dpkg-query",
            image,
            "-W",
            "-f",
            "${Package}\n",
        ]);
        out.unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// `-dev` packages in `image` that the base does not have.
fn dev_added(base: &BTreeSet<String>, image: &BTreeSet<String>) -> Vec<String> {
    image
        .difference(base)
        .filter(|p| p.ends_with("-dev"))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_added_dev_packages() {
        let set = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let base = set(&["libc6", "zlib1g-dev"]);
        let image = set(&["libc6", "zlib1g-dev", "libpq-dev", "libpq5", "dev"]);
        assert_eq!(dev_added(&base, &image), ["libpq-dev"]);
    }
}
