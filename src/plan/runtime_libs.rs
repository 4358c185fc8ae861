//! The runtime libraries of a variant's venv as stages: the check that the image has
//! every library the venv's ELF files load (`system.check`, on by default), and
//! `system.runtime: auto`, the builder's packages those files load, for the runtime apt
//! step. Both read the venv with the project in it; what they run is in
//! `plan/lower/runtime_libs.rs`.

use super::*;

/// What the venv is made of, as the runtime-library stages read it.
pub(super) struct Installed<'a> {
    /// Each group's install stage, in order (the last is the venv).
    pub groups: &'a [StageId],
    /// The Python stage: the venv when there is no group.
    pub python: StageId,
    /// The project's install (its prefix) and `app.project`.
    pub project: Option<(StageId, &'a S<String>)>,
    /// The venv as layers, when every group installed as layers: read as the image reads
    /// it (the empty venv and the layers), never through the groups' own venv stages (the
    /// first stands on the builder, which a lock of wheels alone does not need).
    pub layered: Option<&'a fetched::Layered>,
}

impl Installed<'_> {
    /// Nothing was installed: no ELF file of the venv can need a library.
    fn is_empty(&self) -> bool {
        self.groups.is_empty() && self.project.is_none()
    }

    /// The step both stages share, and their inputs: the venv (the last install, or the
    /// Python stage; or the empty venv and its layers) and the project.
    fn reads(&self, v: &Variant) -> (RuntimeCheckStep, Vec<(Role, StageId)>) {
        let step = RuntimeCheckStep {
            venv: v.python.venv.clone(),
            groups: v.groups.iter().map(|g| g.v.clone()).collect(),
            project: self.project.map(|(_, dir)| dir.v.clone()),
        };
        let mut inputs = match self.layered {
            Some(l) => {
                let (empty, layers) = l.venv_inputs();
                let mut inputs = vec![(Role::EmptyVenv, empty)];
                inputs.extend(layers);
                inputs
            }
            None => vec![(
                Role::Venv,
                self.groups.last().copied().unwrap_or(self.python),
            )],
        };
        inputs.extend(self.project.map(|(install, _)| (Role::Project, install)));
        (step, inputs)
    }
}

impl Builder<'_> {
    /// `system.runtime: auto`: the stage on the builder that names the packages the venv
    /// needs, and where `auto` is written; `None` without `auto` or without a venv to read.
    pub(super) fn runtime_packages(
        &mut self,
        v: &Variant,
        builder: StageId,
        installed: &Installed,
    ) -> Option<(StageId, Loc)> {
        let loc = v.runtime_auto?;
        if installed.is_empty() {
            return None;
        }
        let (step, inputs) = installed.reads(v);
        let id = self.add(StageKind::RuntimePackages(step), Some(builder), inputs, loc);
        Some((id, loc))
    }

    /// The runtime-library check on `runtime` (the image's runtime branch), looking up
    /// what is missing in `builder` (where the venv was built; `base` when nothing of the
    /// venv was, as with a lock of wheels alone: the build packages then stay out of the
    /// graph, and a miss is named without a package), and where each place its report
    /// names is written (the groups, then `app.project`); `None` with
    /// `system.check: false` or nothing installed.
    pub(super) fn runtime_check(
        &mut self,
        spec: &Spec,
        v: &Variant,
        (runtime, builder, base): (StageId, StageId, StageId),
        installed: &Installed,
    ) -> Option<(StageId, Vec<Loc>)> {
        if !v.runtime_check || installed.is_empty() {
            return None;
        }
        let (step, mut inputs) = installed.reads(v);
        let built_there = inputs.iter().any(|(_, id)| self.reaches(*id, builder));
        inputs.push((Role::Builder, if built_there { builder } else { base }));
        // A file of the venv is reported at the first group whose venv has it: every
        // group's but the last's is read (the last holds every file no earlier one has);
        // a layered venv's groups are told by their layers.
        if installed.layered.is_none() {
            let told = installed.groups.len().saturating_sub(1);
            inputs.extend(installed.groups[..told].iter().map(|g| (Role::Group, *g)));
        }
        let mut locs: Vec<Loc> = v
            .groups
            .iter()
            .map(|g| spec.group(&g.v).map_or(g.loc, |group| group.name.loc))
            .collect();
        locs.extend(installed.project.map(|(_, dir)| dir.loc));
        let id = self.add(
            StageKind::RuntimeCheck(step),
            Some(runtime),
            inputs,
            locs[0],
        );
        Some((id, locs))
    }
}

impl Builder<'_> {
    /// Whether `to` is `from` or among the stages it stands on (parents and inputs).
    fn reaches(&self, from: StageId, to: StageId) -> bool {
        let mut seen = vec![false; self.stages.len()];
        let mut todo = vec![from];
        while let Some(id) = todo.pop() {
            if id == to {
                return true;
            }
            if std::mem::replace(&mut seen[id], true) {
                continue;
            }
            let s = &self.stages[id];
            todo.extend(s.parent);
            todo.extend(s.inputs.iter().map(|(_, i)| *i));
        }
        false
    }
}

/// What the venv was made of, for a label: `core, ml` or `core, project .`.
pub(super) fn sources(step: &RuntimeCheckStep) -> String {
    let mut parts: Vec<String> = step.groups.clone();
    parts.extend(step.project.iter().map(|d| format!("project {}", shown(d))));
    parts.join(", ")
}
