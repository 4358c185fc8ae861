//! The stages of a group whose locked files the engine fetches itself (`install::fetchable`):
//! a `Fetch` per chosen file (an HTTP source checked by its sha256, fetched in parallel
//! from the start of the build, cached and exported by digest) and a `Wheel` build per
//! sdist; then the install, offline. Where the engine layers (MergeOp and DiffOp) and
//! every group below was layered too, each large package is a `Layer` of its own and
//! small ones share one of a few stable sets (a layer is what one install wrote into the
//! empty venv), so a new requirement changes one small layer; a `Check` runs `pip check`
//! over the layers so far, and the image stacks them largest first. Elsewhere the group
//! installs in one step from all its files, on the previous group, as other sources do.

use super::install::{self, Fetchable};
use super::*;
use crate::context::interpreter::Interpreter;
use crate::context::pylock::{self, Chosen};
use crate::spec::BuildSecrets;

/// A wheel at least this large (the lock's `size`) is a layer of its own; smaller ones
/// share one of `SETS` layers. Bytes: one MiB.
const SMALL_BYTES: u64 = 1 << 20;
/// How many layers a group's small wheels are spread over, by a hash of the package's
/// name: a package's set never depends on the others, so a new small package changes one
/// set's layer, and a lock of hundreds of small packages is not hundreds of layers (each a
/// container, a diff and a layer the image's engine must stack: overlay2 stops at 128).
const SETS: u8 = 16;
/// Past this many large wheels (or wheels built from sdists, or of unknown size) in a
/// group, they share the sets too (the layer bound wins over one layer per package).
const MAX_OWN: usize = 64;
/// At most this many package layers in one image, whatever its locks hold (overlay2
/// stacks at most 128 layers, the base's own among them): a group that would go past it
/// shares fewer sets, and once none is left it installs in one step (the image then copies
/// the venv whole).
pub const MAX_PACKAGE_LAYERS: usize = 80;

/// What a fetched group's stages share: its name and line, and how it installs.
pub(super) struct Group<'g> {
    pub name: &'g str,
    /// The variant's base, as written.
    pub base: &'g str,
    pub loc: Loc,
    pub pip: &'g PipOptions,
    pub toolchain: &'g Toolchain,
    pub secrets: &'g BuildSecrets,
    /// Where a sdist is built: the builder with the venv copied in, or the Python stage.
    pub wheel_on: &'g (StageId, Vec<(Role, StageId)>),
}

/// A venv made of layers, along one variant's chain of groups: the Python stage (the
/// empty venv every layer is installed into), the layers so far and the checks.
#[derive(Clone, Debug)]
pub(super) struct Layered {
    empty: StageId,
    layers: Vec<Layer>,
    checks: Vec<StageId>,
}

/// One layer: its stage, the packages in it (PEP 503 name, sha256), its files' size in
/// bytes (the lock's `size`; 0 when unknown).
#[derive(Clone, Debug)]
struct Layer {
    stage: StageId,
    packages: Vec<(String, String)>,
    bytes: u64,
}

impl Layered {
    pub fn new(empty: StageId) -> Layered {
        Layered {
            empty,
            layers: vec![],
            checks: vec![],
        }
    }

    /// A layer on top (its stage is a `Layer`).
    pub fn push(&mut self, stage: StageId, packages: Vec<(String, String)>, bytes: u64) {
        self.layers.push(Layer {
            stage,
            packages,
            bytes,
        });
    }

    /// The venv to check, as a check stage reads it: the empty venv (its parent) and every
    /// layer so far (`Layer` inputs, merged on it).
    pub fn venv_inputs(&self) -> (StageId, Vec<(Role, StageId)>) {
        let layers = self.layers.iter().map(|l| (Role::Layer, l.stage)).collect();
        (self.empty, layers)
    }

    /// What the image takes: the empty venv and the layers, largest at the bottom: an
    /// engine unpacks again every layer above one that changed (their chain IDs move), so
    /// a new small package must not sit under torch.
    pub fn image_inputs(&self) -> Vec<(Role, StageId)> {
        let mut layers: Vec<&Layer> = self.layers.iter().collect();
        layers.sort_by_key(|l| std::cmp::Reverse(l.bytes));
        let mut out = vec![(Role::EmptyVenv, self.empty)];
        out.extend(layers.into_iter().map(|l| (Role::Layer, l.stage)));
        out
    }

    /// Each group's `pip check`: gates of the image, not its inputs (`Target::gates`).
    pub fn checks(&self) -> &[StageId] {
        &self.checks
    }
}

/// One package of the group as the install reads it: the stage that holds its wheel (the
/// fetched file, or the wheel built from the sdist) and the wheel's name in it.
pub(super) struct Wheel {
    /// PEP 503 name and the sha256 of the locked file: two groups that lock the same file
    /// share it; the same name with another file cannot be layered.
    key: (String, String),
    /// `name version`.
    label: String,
    stage: StageId,
    /// The wheel's name in the stage's output (a glob for one built from a sdist).
    file: String,
    /// The shared layer a small wheel goes into (`None`: a layer of its own).
    set: Option<u8>,
    /// The locked file's size (the sdist's for a built wheel); 0 when the lock has none.
    bytes: u64,
}

/// Which set a small wheel of package `name` (PEP 503 normalized) goes into: stable across
/// locks, builds and kiln versions (sha256, not Rust's hasher).
fn set_of(name: &str) -> u8 {
    use sha2::Digest;
    sha2::Sha256::digest(name.as_bytes())[0] % SETS
}

/// `wheels` as the layers they are installed in, in lock order, in at most `budget`
/// layers (at least 1): a large wheel (or one built from a sdist, or of unknown size)
/// alone, small ones by set; past `MAX_OWN` own layers, or past the budget, every wheel by
/// set, over at most `budget` sets.
fn layers(wheels: Vec<&Wheel>, budget: usize) -> Vec<Vec<&Wheel>> {
    let own = wheels.iter().filter(|w| w.set.is_none()).count();
    let sets: std::collections::BTreeSet<u8> = wheels.iter().filter_map(|w| w.set).collect();
    let shared = own > MAX_OWN || own + sets.len() > budget;
    let count = (budget.max(1) as u8).min(SETS);
    let set = |w: &Wheel| match shared {
        true => Some(set_of(&w.key.0) % count),
        false => w.set,
    };
    let mut units: Vec<(Option<u8>, Vec<&Wheel>)> = vec![];
    for w in wheels {
        match set(w).and_then(|s| units.iter_mut().find(|(u, _)| *u == Some(s))) {
            Some((_, unit)) => unit.push(w),
            None => units.push((set(w), vec![w])),
        }
    }
    units.into_iter().map(|(_, u)| u).collect()
}

/// The highest patch release an assumed interpreter's series is tried at.
const MAX_PATCH: u32 = 40;

/// The values of `var` for which `lock` selects the same packages as for `target`
/// (assumed): for `python_full_version` (with `implementation_version`), the series'
/// patch releases; for another variable, the assumed value alone.
fn same_choice(target: &Interpreter, var: &str, lock: &Fetchable) -> Vec<String> {
    let selected = |t: &Interpreter| -> Option<Vec<(String, Option<String>)>> {
        let packages = lock.select(t).ok()?;
        Some(packages.into_iter().map(|p| (p.name, p.version)).collect())
    };
    let assumed = target.value_of(var).to_string();
    if var != "python_full_version" && var != "implementation_version" {
        return vec![assumed];
    }
    let Some(want) = selected(target) else {
        return vec![assumed];
    };
    (0..=MAX_PATCH)
        .map(|patch| format!("{}.{patch}", target.python_version))
        .filter(|full| {
            let t = Interpreter {
                python_full_version: full.clone(),
                implementation_version: full.clone(),
                ..target.clone()
            };
            selected(&t).as_ref() == Some(&want)
        })
        .collect()
}

/// A layer's packages for a step name: up to four, else three and a count.
pub(super) fn packages_label(packages: &[String]) -> String {
    match packages.len() {
        0..=4 => packages.join(", "),
        n => format!("{} and {} more", packages[..3].join(", "), n - 3),
    }
}

impl Builder<'_> {
    /// The interpreter a lock's files are chosen for: the base's, as read, else assumed
    /// from the Python the spec or project asks for. Errors: neither is known.
    pub(super) fn target(&self, base: &str, lock: &Fetchable) -> Result<Interpreter, String> {
        if let Some(read) = self.opts.interpreters.get(base) {
            return Ok(read.clone());
        }
        let arch = &self.opts.platform.architecture;
        let python = lock.python.as_deref().ok_or(
            "the base's Python was not read and neither python.version nor the project's .python-version says which it is",
        )?;
        Interpreter::assumed(python, arch)
            .ok_or_else(|| format!("no wheels are known for CPython {python} on linux/{arch}"))
    }

    /// What choosing the files of `v`'s fetched groups takes on trust when the base's
    /// interpreter was not read: each marker variable of `interpreter::GUESSED` a package's
    /// marker reads, with the values (of `python_full_version`: patch releases 0 to
    /// `MAX_PATCH` of the series) that choose the same packages as the value assumed.
    pub(super) fn assumed(&self, spec: &Spec, v: &Variant) -> Vec<Assumed> {
        let mut out: Vec<Assumed> = vec![];
        for g in &v.groups {
            let Some(lock) = spec
                .group(&g.v)
                .and_then(|g| install::fetchable(&g.source, v, self.context))
            else {
                continue;
            };
            let Ok(target) = self.target(&v.python.base.v, &lock) else {
                continue;
            };
            if target.read {
                continue;
            }
            for (name, marker) in lock.markers() {
                for var in target.guessed(&marker) {
                    let packages = match out.iter_mut().find(|a| a.var == var) {
                        Some(a) => &mut a.packages,
                        None => {
                            out.push(Assumed {
                                var: var.to_string(),
                                allowed: vec![],
                                packages: vec![],
                            });
                            &mut out.last_mut().expect("pushed").packages
                        }
                    };
                    if !packages.contains(&name) {
                        packages.push(name.clone());
                    }
                }
            }
            for a in &mut out {
                a.allowed = same_choice(&target, &a.var, &lock);
            }
        }
        out
    }

    /// The stages of a fetched group: its files, then the install as layers (when the
    /// engine layers, `layered` holds the venv so far and no package is locked with
    /// another file below) or in one step from all the files. Returns the install and its
    /// inputs. Errors: why the lock cannot be installed from fetched files for this
    /// platform (the caller installs in the step).
    pub(super) fn fetched(
        &mut self,
        lock: &Fetchable,
        group: &Group,
        layered: &mut Option<Layered>,
    ) -> Result<(Install, Vec<(Role, StageId)>), String> {
        let target = self.target(group.base, lock)?;
        let packages = lock.select(&target)?;
        let chosen = pylock::choose(&packages, &target)?;
        let wheels: Vec<Wheel> = chosen
            .into_iter()
            .map(|(p, c)| self.wheel(p, c, group))
            .collect();
        // The packages the layers below already hold.
        let have: Vec<(String, String)> = layered
            .iter()
            .flat_map(|l| l.layers.iter().flat_map(|p| p.packages.iter().cloned()))
            .collect();
        let conflict = wheels
            .iter()
            .any(|w| have.iter().any(|k| k.0 == w.key.0 && k.1 != w.key.1));
        // What is left of the image's layer budget (one kept for the project).
        let budget = layered
            .as_ref()
            .map_or(0, |l| MAX_PACKAGE_LAYERS.saturating_sub(l.layers.len() + 1));
        let Some(venv) = layered
            .as_mut()
            .filter(|_| self.opts.layers && !conflict && budget > 0)
        else {
            *layered = None;
            let files = wheels.iter().map(|w| (Role::File, w.stage)).collect();
            return Ok((Install::Files, files));
        };
        let new: Vec<&Wheel> = wheels.iter().filter(|w| !have.contains(&w.key)).collect();
        let mut added = vec![];
        for unit in layers(new, budget) {
            let step = LayerStep {
                group: group.name.to_string(),
                packages: unit.iter().map(|w| w.label.clone()).collect(),
                files: unit.iter().map(|w| w.file.clone()).collect(),
                toolchain: group.toolchain.clone(),
            };
            let files = unit.iter().map(|w| (Role::File, w.stage)).collect();
            let stage = self.add(StageKind::Layer(step), Some(venv.empty), files, group.loc);
            venv.push(
                stage,
                unit.iter().map(|w| w.key.clone()).collect(),
                unit.iter().map(|w| w.bytes).sum(),
            );
            added.push((Role::Layer, stage));
        }
        if group.pip.check {
            // Over the layers alone (on the Python stage): the check needs no builder.
            let step = CheckStep {
                group: group.name.to_string(),
                toolchain: group.toolchain.clone(),
            };
            let (empty, layers) = venv.venv_inputs();
            let check = self.add(StageKind::Check(step), Some(empty), layers, group.loc);
            venv.checks.push(check);
        }
        Ok((Install::Layers, added))
    }

    /// The stage that holds package `p`'s chosen file: its fetch, or the wheel built from
    /// the fetched sdist.
    fn wheel(&mut self, p: &pylock::LockedPackage, chosen: Chosen, group: &Group) -> Wheel {
        let label = match &p.version {
            Some(v) => format!("{} {v}", p.name),
            None => p.name.clone(),
        };
        let (file, built) = match chosen {
            Chosen::Wheel(f) => (f, false),
            Chosen::Sdist(f) => (f, true),
        };
        let key = (pylock::normalize(&p.name), file.sha256.clone());
        let bytes = file.size.unwrap_or(0);
        let small = file.size.is_some_and(|n| n < SMALL_BYTES);
        let filename = file.filename.clone();
        // At the group's spec line: a failed fetch (a digest mismatch) is reported there.
        let fetch = self.add(
            StageKind::Fetch(FetchStep { file }),
            None,
            vec![],
            group.loc,
        );
        if !built {
            return Wheel {
                set: small.then(|| set_of(&key.0)),
                key,
                label,
                stage: fetch,
                file: shell::quote(&filename),
                bytes,
            };
        }
        let step = WheelStep {
            package: label.clone(),
            group: group.name.to_string(),
            sdist: filename,
            pip: group.pip.clone(),
            toolchain: group.toolchain.clone(),
            // The sdist's build backend is the lock's code, run here: it gets the CA for
            // the index, never the netrc.
            secrets: BuildSecrets {
                ca_bundle: group.secrets.ca_bundle.clone(),
                netrc: None,
            },
        };
        let (on, toolchain) = group.wheel_on;
        let mut inputs = toolchain.clone();
        inputs.push((Role::File, fetch));
        let stage = self.add(StageKind::Wheel(step), Some(*on), inputs, group.loc);
        Wheel {
            key,
            label,
            stage,
            file: "*.whl".into(),
            set: None,
            bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wheel(name: &str, size: u64) -> Wheel {
        Wheel {
            key: (name.into(), format!("sha-{name}")),
            label: name.into(),
            stage: 0,
            file: format!("{name}.whl"),
            set: (size < SMALL_BYTES).then(|| set_of(name)),
            bytes: size,
        }
    }

    fn names(units: Vec<Vec<&Wheel>>) -> Vec<Vec<String>> {
        units
            .into_iter()
            .map(|u| u.iter().map(|w| w.label.clone()).collect())
            .collect()
    }

    /// Large wheels alone, small ones by set; a package's layer does not depend on which
    /// other packages the lock has; past `MAX_OWN` large wheels, or past the budget, every
    /// wheel shares the sets, built ones included.
    #[test]
    fn layers_are_large_wheels_alone_and_small_ones_by_set() {
        let budget = MAX_PACKAGE_LAYERS;
        let small: Vec<Wheel> = (0..200).map(|i| wheel(&format!("p{i}"), 10_000)).collect();
        let units = layers(small.iter().collect(), budget);
        assert_eq!(
            units.len(),
            SETS as usize,
            "200 small wheels fill every set"
        );
        assert!(units.iter().all(|u| u.len() > 1));
        // The same package is in the same set with or without the others.
        let fewer = layers(small[..100].iter().collect(), budget);
        let set_with = |units: &[Vec<&Wheel>], w: &Wheel| {
            units
                .iter()
                .find(|u| u.iter().any(|x| x.key == w.key))
                .map(|u| u.iter().map(|x| x.set).collect::<Vec<_>>())
        };
        for w in &small[..100] {
            let (all, some) = (set_with(&units, w), set_with(&fewer, w));
            assert_eq!(all.as_ref().map(|s| s[0]), some.as_ref().map(|s| s[0]));
            assert!(all.unwrap().iter().all(|s| *s == w.set));
        }
        let mixed = [
            wheel("torch", 800 << 20),
            wheel("six", 11_000),
            wheel("numpy", 16 << 20),
        ];
        assert_eq!(
            names(layers(mixed.iter().collect(), budget)),
            [vec!["torch"], vec!["six"], vec!["numpy"]]
        );
        let large: Vec<Wheel> = (0..=MAX_OWN)
            .map(|i| wheel(&format!("big{i}"), 2 << 20))
            .collect();
        assert_eq!(layers(large.iter().collect(), budget).len(), SETS as usize);
        assert_eq!(
            layers(large[..MAX_OWN].iter().collect(), budget).len(),
            MAX_OWN
        );
        // Issue 21: 130 wheels built from sdists (their own layer each, below the bounds)
        // no longer make 130 layers.
        let built: Vec<Wheel> = (0..130)
            .map(|i| wheel(&format!("sdist{i}"), 2 << 20))
            .collect();
        assert_eq!(layers(built.iter().collect(), budget).len(), SETS as usize);
        // A budget smaller than the sets: that many layers, at least one.
        assert_eq!(layers(large.iter().collect(), 5).len(), 5);
        assert_eq!(layers(large.iter().collect(), 0).len(), 1);
        assert_eq!(layers(mixed.iter().collect(), 2).len(), 2);
    }
}
