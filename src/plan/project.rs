//! The app's own project (`app.project`) as stages of its own, apart from the venv: its
//! wheel built where sdists are (the builder with the venv's toolchain, on no group: an
//! edit to the app rebuilds it and nothing below), installed alone into a prefix by the
//! empty venv's interpreter (the image's project layer, after the groups' layers), and the
//! installer's check over the venv with the project's metadata, which the image waits for
//! but no layer stands on.

use super::*;

/// The stages of the project that others read: the install (its prefix) and the check.
#[derive(Clone, Copy, Debug)]
pub(super) struct Project {
    pub install: StageId,
    /// `None` with `pip: {check: false}`.
    pub check: Option<StageId>,
}

impl Builder<'_> {
    /// The project in `dir` (at `app.project`'s line): its wheel built on `wheel_on` (a
    /// stage and the inputs it takes there), installed on `python`, checked on the venv so
    /// far (`venv`: the last install stage, or the layers when the image takes them).
    pub(super) fn project(
        &mut self,
        spec: &Spec,
        v: &Variant,
        dir: &S<String>,
        toolchain: &Toolchain,
        (wheel_on, python): (&On, StageId),
        (venv, layered): (StageId, Option<&fetched::Layered>),
    ) -> Project {
        let pip = PipOptions::of(v);
        let step = ProjectStep {
            dir: dir.v.clone(),
            exclude: self.app_exclude(spec),
            pip: pip.clone(),
            toolchain: toolchain.clone(),
            secrets: spec.secrets.clone(),
        };
        let (on, inputs) = wheel_on;
        let wheel = self.add(
            StageKind::ProjectWheel(step),
            Some(*on),
            inputs.clone(),
            dir.loc,
        );
        let install = ProjectInstallStep {
            dir: dir.v.clone(),
            toolchain: toolchain.clone(),
        };
        let install = self.add(
            StageKind::Project(install),
            Some(python),
            vec![(Role::File, wheel)],
            dir.loc,
        );
        let check = pip.check.then(|| {
            // Over the layers alone where the image takes them (no builder needed), else
            // over the last install.
            let (on, mut inputs) = match layered {
                Some(l) => l.venv_inputs(),
                None => (venv, vec![]),
            };
            inputs.push((Role::Project, install));
            let step = ProjectCheckStep {
                dir: dir.v.clone(),
                toolchain: toolchain.clone(),
            };
            self.add(StageKind::ProjectCheck(step), Some(on), inputs, dir.loc)
        });
        Project { install, check }
    }
}
