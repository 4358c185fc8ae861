//! How the image runs, spec-wide and per variant: user, entrypoint, cmd, health check,
//! ports, stop signal, init, writable directories, volumes and single files. A variant's
//! values are laid over the spec-wide ones: the single values replace, the lists add.

use super::{Cx, Fields};
use crate::diag::Loc;
use crate::spec::format::*;
use crate::spec::model::*;
use crate::spec::validate;
use crate::spec::yaml::{Node, Value};

/// The process keys as written in one place (every key optional).
#[derive(Clone, Debug, Default)]
pub(super) struct ProcessFields {
    user: Option<User>,
    entrypoint: Option<S<Vec<String>>>,
    cmd: Option<S<Vec<String>>>,
    /// `Some(None)`: `healthcheck: null`, which removes a spec-wide one.
    healthcheck: Option<Option<Healthcheck>>,
    ports: Vec<S<String>>,
    stop_signal: Option<S<String>>,
    init: Option<S<bool>>,
    writable: Vec<S<String>>,
    volumes: Vec<S<String>>,
    files: Vec<S<FileCopy>>,
}

impl ProcessFields {
    /// `self` (a variant's) laid over `shared` (the spec-wide values).
    pub(super) fn over(self, shared: &ProcessFields) -> ProcessFields {
        let add = |a: &[S<String>], b: Vec<S<String>>| unique(a.iter().cloned().chain(b));
        let mut files = shared.files.clone();
        // A variant's file for the same destination replaces the spec-wide one.
        files.retain(|f| !self.files.iter().any(|o| o.v.dest == f.v.dest));
        files.extend(self.files);
        ProcessFields {
            user: self.user.or_else(|| shared.user.clone()),
            entrypoint: self.entrypoint.or_else(|| shared.entrypoint.clone()),
            cmd: self.cmd.or_else(|| shared.cmd.clone()),
            healthcheck: self.healthcheck.or_else(|| shared.healthcheck.clone()),
            ports: add(&shared.ports, self.ports),
            stop_signal: self.stop_signal.or_else(|| shared.stop_signal.clone()),
            init: self.init.or_else(|| shared.init.clone()),
            writable: add(&shared.writable, self.writable),
            volumes: add(&shared.volumes, self.volumes),
            files,
        }
    }

    pub(super) fn finish(self) -> Process {
        Process {
            user: self.user.unwrap_or_else(default_user),
            entrypoint: self.entrypoint,
            cmd: self.cmd,
            healthcheck: self.healthcheck.flatten(),
            ports: self.ports,
            stop_signal: self.stop_signal,
            init: self.init,
            writable: self.writable,
            volumes: self.volumes,
            files: self.files,
        }
    }
}

pub(super) fn default_user() -> User {
    User {
        name: DEFAULT_USER.into(),
        uid: DEFAULT_UID,
        gid: DEFAULT_UID,
        loc: Loc::default(),
    }
}

/// Each value once, the first mention winning.
fn unique(items: impl Iterator<Item = S<String>>) -> Vec<S<String>> {
    let mut seen = std::collections::BTreeSet::new();
    items.filter(|i| seen.insert(i.v.clone())).collect()
}

impl Cx {
    /// The process keys of one mapping (the spec's top level or a variant); `at` names
    /// it in messages (`""` or `variants.NAME.`).
    pub(super) fn process_fields(&mut self, f: Fields, at: &str) -> ProcessFields {
        let healthcheck = f.get("healthcheck").map(|h| match h.value {
            Value::Null => None,
            _ => self.healthcheck(h),
        });
        ProcessFields {
            user: f.get("user").map(|u| self.user(Some(u))),
            entrypoint: f
                .get("entrypoint")
                .and_then(|e| self.command(e, &format!("{at}entrypoint"))),
            cmd: f
                .get("cmd")
                .and_then(|e| self.command(e, &format!("{at}cmd"))),
            healthcheck,
            ports: f.get("ports").map(|p| self.ports(p)).unwrap_or_default(),
            stop_signal: f.get("stop_signal").and_then(|s| self.stop_signal(s)),
            init: f.get("init").and_then(|i| {
                let v = self.bool(i, &format!("{at}init"))?;
                Some(S::new(v, i.loc))
            }),
            writable: self.dirs(f.get("writable"), &format!("{at}writable")),
            volumes: self.dirs(f.get("volumes"), &format!("{at}volumes")),
            files: f
                .get("files")
                .map(|n| self.file_copies(n, &format!("{at}files")))
                .unwrap_or_default(),
        }
    }

    /// `writable` or `volumes`: absolute directories in the image, not `/`.
    fn dirs(&mut self, node: Option<&Node>, what: &str) -> Vec<S<String>> {
        let Some(node) = node else { return vec![] };
        let mut out = vec![];
        for d in self.list(node, what) {
            match validate::abs_path(&d.v) {
                Err(why) => self.err(
                    d.loc,
                    format!("invalid path `{}` in {what}: {why}", d.v),
                    "use an absolute directory such as /var/lib/worker",
                ),
                // Checked as normalised (`/./`, `//etc`, `/etc/.` are `/` and `/etc`), and
                // kept so: the owned directory is the one checked.
                Ok(path) if is_system_dir(&path) => self.err(
                    d.loc,
                    format!("`{}` in {what} is a system directory", d.v),
                    "name a directory of the app's own, such as /var/lib/worker or /data",
                ),
                Ok(path) => out.push(S::new(path, d.loc)),
            }
        }
        out
    }

    /// `files`: `{src, dest, mode, owner}` entries.
    fn file_copies(&mut self, node: &Node, what: &str) -> Vec<S<FileCopy>> {
        let Value::Seq(items) = &node.value else {
            self.err(
                node.loc,
                format!("{what} must be a list, found {}", node.type_name()),
                "write files: [{src: config/app.toml, dest: /etc/worker/app.toml}]",
            );
            return vec![];
        };
        items.iter().filter_map(|i| self.file(i, what)).collect()
    }

    fn file(&mut self, item: &Node, what: &str) -> Option<S<FileCopy>> {
        let f = self.fields(item, &format!("an entry of {what}"), FILE_KEYS);
        let (Some(src), Some(dest)) = (f.get("src"), f.get("dest")) else {
            self.err(
                item.loc,
                format!("an entry of {what} needs `src` and `dest`"),
                "write {src: config/app.toml, dest: /etc/worker/app.toml, mode: \"0640\"}",
            );
            return None;
        };
        let src = self.context_path(src, &format!("{what}.src"))?;
        self.uses.push(ContextUse {
            what: "files.src",
            path: src.clone(),
        });
        let dest_s = self.text(dest, &format!("{what}.dest"))?;
        let dest_path = match validate::abs_path(&dest_s.v) {
            Ok(p) => p,
            Err(why) => {
                self.err(
                    dest_s.loc,
                    format!("invalid {what}.dest `{}`: {why}", dest_s.v),
                    "give the file's absolute path in the image, e.g. /etc/worker/app.toml",
                );
                return None;
            }
        };
        if dest_s.v.ends_with('/') || dest_s.v.ends_with("/.") {
            self.err(
                dest_s.loc,
                format!("{what}.dest `{}` is a directory", dest_s.v),
                "give the file's full path, e.g. /etc/worker/app.toml",
            );
            return None;
        }
        let mode = f
            .get("mode")
            .and_then(|m| self.file_mode(m, what))
            .unwrap_or(DEFAULT_FILE_MODE);
        let owner = f
            .get("owner")
            .and_then(|o| self.owner(o, &format!("{what}.owner")))
            .unwrap_or_default();
        let copy = FileCopy {
            src: src.v,
            dest: dest_path,
            mode,
            owner,
        };
        Some(S::new(copy, item.loc))
    }

    /// A file mode: an octal string (`"0640"`) or an integer written in octal digits.
    fn file_mode(&mut self, node: &Node, what: &str) -> Option<u32> {
        let text = match &node.value {
            Value::Int(i) => i.to_string(),
            Value::Str(s) => s.clone(),
            _ => String::new(),
        };
        let digits = text.strip_prefix("0o").unwrap_or(&text);
        match u32::from_str_radix(digits, 8) {
            Ok(m) if m <= 0o7777 && !digits.is_empty() => Some(m),
            _ => {
                self.err(
                    node.loc,
                    format!("invalid {what}.mode `{text}`"),
                    "write an octal mode in quotes, e.g. \"0644\" or \"0600\"",
                );
                None
            }
        }
    }

    /// `root` or `user`.
    pub(super) fn owner(&mut self, node: &Node, what: &str) -> Option<AppOwner> {
        let s = self.text(node, what)?;
        match s.v.as_str() {
            "root" => Some(AppOwner::Root),
            "user" => Some(AppOwner::User),
            other => {
                self.err(
                    s.loc,
                    format!("invalid {what} `{other}`"),
                    format!("use one of: {}", OWNERS.join(", ")),
                );
                None
            }
        }
    }
}

/// Directories that must stay root's (`path` normalised): handing one to the app user
/// would open the system.
fn is_system_dir(path: &str) -> bool {
    matches!(
        path,
        "/" | "/bin"
            | "/boot"
            | "/dev"
            | "/etc"
            | "/lib"
            | "/lib64"
            | "/proc"
            | "/root"
            | "/run"
            | "/sbin"
            | "/sys"
            | "/usr"
            | "/var"
            | "/usr/bin"
            | "/usr/lib"
            | "/usr/local"
            | "/usr/local/bin"
            | "/usr/sbin"
            | "/var/lib"
            | "/home"
            | "/opt"
            | "/tmp"
            | "/var/tmp"
            | "/usr/share"
            | "/usr/libexec"
            | "/var/cache"
            | "/var/log"
    )
}
