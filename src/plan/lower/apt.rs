//! The apt steps: build packages on the builder branch, runtime libraries on the image's.

use super::runtime_libs::PACKAGES;
use super::{StepEnv, context_source, sh};
use crate::llb::{Meta, Mount, Sharing, State};
use crate::plan::shell::{join, quote};
use crate::plan::{AptRole, AptStep, LowerOpts};
use crate::spec::AptRepository;

/// Where the packages the builder found (`system.runtime: auto`) are mounted.
const FOUND: &str = "/kiln/runtime-packages";

/// `apt-get install` of the step's packages on `parent`, and of those in `found` (the
/// lists of the builder's search, `system.runtime: auto`) that the base lacks.
pub(super) fn apt(
    parent: &State,
    found: Option<&[State]>,
    step: &AptStep,
    env: &StepEnv,
    opts: &LowerOpts,
    meta: Meta,
) -> State {
    let (sources, unsources, mut mounts) =
        apt_sources(&step.repositories, &step.dockerignore, opts);
    let script = match found {
        None => install(&sources, &unsources, &join(&step.packages)),
        Some(found) => {
            let lists: Vec<String> = (0..found.len())
                .map(|i| format!("{FOUND}/{i}/{PACKAGES}"))
                .collect();
            mounts.extend(found.iter().enumerate().map(|(i, list)| Mount::Bind {
                dest: format!("{FOUND}/{i}"),
                src: list.clone(),
            }));
            // The spec's packages, then each found one the base does not have installed
            // (a package the base has needs no index); nothing to install: no apt at all.
            // The names are checked where they are written (a Debian package name).
            let install = install(&sources, &unsources, "\"$@\"");
            format!(
                "set -eu\nset -f\nset -- {}\n\
                 for p in $(cat {} | sort -u); do\n\
                 \x20 case \"$(dpkg-query -W -f='${{Status}}' \"$p\" 2>/dev/null || true)\" in\n\
                 \x20   *' installed') ;;\n\
                 \x20   *) set -- \"$@\" \"$p\";;\n\
                 \x20 esac\n\
                 done\n\
                 set +f\n\
                 if [ $# -eq 0 ]; then echo 'kiln: the base has every runtime package'; exit 0; fi\n\
                 echo \"kiln: installing $*\"\n\
                 {install}",
                join(&step.packages),
                lists.join(" ")
            )
        }
    };
    // apt cannot share its cache with a second apt at once, so the mounts are locked; one
    // pair per role, so the build branch (on the critical path) never waits for the
    // runtime branch's apt, which BuildKit runs at the same time.
    let role = match step.role {
        AptRole::Build => "build",
        AptRole::Runtime => "runtime",
    };
    mounts.extend([
        Mount::Cache {
            dest: "/var/cache/apt".into(),
            id: format!("kiln-apt-cache-{role}"),
            sharing: Sharing::Locked,
        },
        Mount::Cache {
            dest: "/var/lib/apt/lists".into(),
            id: format!("kiln-apt-lists-{role}"),
            sharing: Sharing::Locked,
        },
    ]);
    parent.run(sh(script, env.to_vec(), mounts, meta)).root()
}

/// The script that installs `packages` (shell words) with the extra `sources` added
/// and taken out again (`unsources`).
fn install(sources: &str, unsources: &str, packages: &str) -> String {
    // Debian images ship a hook that empties /var/cache/apt after every install, which
    // would defeat the cache mount: move it aside for this step and put it back.
    format!(
        "set -eu\n\
         hook=/etc/apt/apt.conf.d/docker-clean\n\
         if [ -e \"$hook\" ]; then mv \"$hook\" /tmp/kiln-docker-clean; fi\n\
         {sources}\
         apt-get update -qq\n\
         DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o Dpkg::Use-Pty=0 --no-install-recommends {packages}\n\
         {unsources}\
         if [ -e /tmp/kiln-docker-clean ]; then mv /tmp/kiln-docker-clean \"$hook\"; fi\n\
         rm -rf /var/log/apt/* /var/log/dpkg.log /var/cache/debconf/*-old /var/cache/ldconfig/aux-cache\n"
    )
}

/// Where the repositories' keys are mounted (from the context, read-only).
pub(super) const APT_KEYS: &str = "/kiln/apt-keys";

/// The extra apt sources of a step: the lines that add them (each trusted only through
/// its key, `signed-by`), the lines that take them out again (the key is not in the image,
/// so a source left behind would break a later `apt-get update`), and the keys' mount.
pub(super) fn apt_sources(
    repos: &[AptRepository],
    dockerignore: &[String],
    opts: &LowerOpts,
) -> (String, String, Vec<Mount>) {
    if repos.is_empty() {
        return (String::new(), String::new(), vec![]);
    }
    let (mut add, mut remove) = (String::new(), String::new());
    for r in repos {
        let list = format!("/etc/apt/sources.list.d/kiln-{}.list", r.name);
        let line = format!(
            "deb [signed-by={APT_KEYS}/{}] {} {} {}",
            r.key,
            r.url,
            r.suite,
            r.components.join(" ")
        );
        add.push_str(&format!(
            "printf '%s\\n' {} >{list}\n",
            quote(line.trim_end())
        ));
        remove.push_str(&format!("rm -f {list}\n"));
    }
    let mut keys: Vec<String> = repos.iter().map(|r| r.key.clone()).collect();
    keys.sort();
    keys.dedup();
    let src = context_source(opts, (keys, dockerignore.to_vec()), "", "apt keys");
    let mount = Mount::Bind {
        dest: APT_KEYS.into(),
        src,
    };
    (add, remove, vec![mount])
}
