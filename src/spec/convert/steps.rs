//! `steps`: the spec's own commands, the escape hatch for what kiln has no key for
//! (compile bytecode, fetch a model file, generate assets, install a vendor .deb).

use super::Cx;
use crate::spec::format::*;
use crate::spec::model::*;
use crate::spec::validate;
use crate::spec::yaml::{Node, Value};

impl Cx {
    pub(super) fn steps(&mut self, node: &Node) -> Vec<S<CustomStep>> {
        let Value::Seq(items) = &node.value else {
            self.err(
                node.loc,
                format!("steps must be a list, found {}", node.type_name()),
                "write steps: [{name: assets, run: \"make assets\", inputs: [assets/], outputs: [{from: /out, to: /app/static}]}]",
            );
            return vec![];
        };
        if let Some(over) = items.get(MAX_STEPS) {
            self.err(
                over.loc,
                format!("more than {MAX_STEPS} steps"),
                "join steps that belong together into one `run` (each image step is a layer of the image)",
            );
        }
        let mut out: Vec<S<CustomStep>> = vec![];
        let mut names = std::collections::BTreeSet::new();
        for item in items {
            let Some(step) = self.step(item) else {
                continue;
            };
            if !names.insert(step.v.name.clone()) {
                self.err(
                    item.loc,
                    format!("step `{}` is listed twice", step.v.name),
                    "give each step its own name",
                );
                continue;
            }
            out.push(step);
        }
        out
    }

    fn step(&mut self, item: &Node) -> Option<S<CustomStep>> {
        let f = self.fields(item, "a step", STEP_KEYS);
        let name = match f.get("name") {
            Some(n) => self.text(n, "steps.name"),
            None => {
                self.err(
                    item.loc,
                    "a step has no `name`",
                    "name it, e.g. name: assets (it shows in the build's progress)",
                );
                None
            }
        };
        if let Some(n) = &name
            && !validate::is_image_name_part(&n.v)
        {
            self.err(
                n.loc,
                format!("invalid step name `{}`", n.v),
                "use lowercase letters, digits, '.', '_' and '-'",
            );
        }
        let run = match f.get("run") {
            Some(r) => self.text(r, "steps.run"),
            None => {
                self.err(
                    item.loc,
                    "a step has no `run`",
                    "give the shell commands, e.g. run: python -m app.build_assets --out /out",
                );
                None
            }
        };
        let place = self.step_place(f.get("in"));
        let inputs = self.step_inputs(f.get("inputs"));
        let outputs = f
            .get("outputs")
            .map(|o| self.step_outputs(o, place))
            .unwrap_or_default();
        let cache = self.step_dirs(f.get("cache"), "steps.cache");
        let secrets = self.step_secrets(f.get("secrets"));
        match (place, f.get("secrets"), f.get("outputs")) {
            // docs/security.md: secret mounts are only in builder steps, so not even their
            // mount points are in the image's layers.
            (StepPlace::Image, Some(s), _) if !secrets.is_empty() => self.err(
                s.loc,
                "a step in the image cannot mount secrets",
                "run it in the builder (`in: builder`) and copy what it makes with `outputs`: secrets never touch the image",
            ),
            // The image copies only a builder step's outputs: without any, it never runs.
            (StepPlace::Builder, _, o)
                if o.is_none_or(|o| matches!(&o.value, Value::Seq(v) if v.is_empty())) =>
            {
                self.err(
                item.loc,
                "a builder step without `outputs` would never run",
                "list what it makes in outputs: [{from: /out, to: /app/static}], or run it in the image (`in: image`)",
            );
            }
            _ => {}
        }
        let network = f
            .get("network")
            .and_then(|n| self.bool(n, "steps.network"))
            .unwrap_or(DEFAULT_STEP_NETWORK);
        let step = CustomStep {
            name: name?.v,
            place,
            run: run?.v,
            inputs,
            outputs,
            cache,
            secrets,
            network,
        };
        Some(S::new(step, item.loc))
    }

    fn step_place(&mut self, node: Option<&Node>) -> StepPlace {
        match node.and_then(|p| self.text(p, "steps.in")) {
            None => StepPlace::Builder,
            Some(p) if p.v == "builder" => StepPlace::Builder,
            Some(p) if p.v == "image" => StepPlace::Image,
            Some(p) => {
                let help = format!("use one of: {}", STEP_PLACES.join(", "));
                self.err(p.loc, format!("invalid steps.in `{}`", p.v), help);
                StepPlace::Builder
            }
        }
    }

    fn step_inputs(&mut self, node: Option<&Node>) -> Vec<String> {
        let Some(n) = node else { return vec![] };
        match &n.value {
            Value::Seq(items) => {
                let mut out = vec![];
                for s in items
                    .iter()
                    .filter_map(|i| self.context_path(i, "steps.inputs"))
                    .collect::<Vec<_>>()
                {
                    // `*`, `**`, `*/**`: the whole context, with whatever secrets it holds.
                    if s.v.split('/').all(|seg| seg.chars().all(|c| c == '*')) {
                        self.err(
                            s.loc,
                            format!("steps.inputs `{}` names the whole build context", s.v),
                            "name what the step reads, e.g. inputs: [assets/, package.json]: only those enter the step and rerun it when they change",
                        );
                        continue;
                    }
                    self.uses.push(ContextUse {
                        what: "steps.inputs",
                        path: s.clone(),
                    });
                    out.push(s.v);
                }
                out
            }
            _ => {
                self.err(
                    n.loc,
                    "steps.inputs must be a list of context paths",
                    "write inputs: [assets/, package.json]",
                );
                vec![]
            }
        }
    }

    fn step_secrets(&mut self, node: Option<&Node>) -> Vec<String> {
        let ids = node
            .map(|s| self.list(s, "steps.secrets"))
            .unwrap_or_default();
        let mut out = vec![];
        for s in ids {
            if validate::is_secret_id(&s.v) {
                out.push(s.v);
            } else {
                self.err(
                    s.loc,
                    format!("invalid secret id `{}`", s.v),
                    "use letters, digits, '.', '_' and '-' (the id given to --secret id=...)",
                );
            }
        }
        out
    }

    fn step_outputs(&mut self, node: &Node, place: StepPlace) -> Vec<StepOutput> {
        if place == StepPlace::Image {
            self.err(
                node.loc,
                "a step in the image has no `outputs`",
                "what it writes is in the image already; `outputs` take files from a builder step",
            );
            return vec![];
        }
        let Value::Seq(items) = &node.value else {
            self.err(
                node.loc,
                "steps.outputs must be a list",
                "write outputs: [{from: /out/static, to: /app/static}]",
            );
            return vec![];
        };
        let mut out = vec![];
        for item in items {
            let f = self.fields(item, "an entry of steps.outputs", OUTPUT_KEYS);
            let mut path = |key: &str| -> Option<String> {
                let Some(n) = f.get(key) else {
                    self.err(
                        item.loc,
                        format!("an entry of steps.outputs has no `{key}`"),
                        "write {from: /out/static, to: /app/static}",
                    );
                    return None;
                };
                let s = self.text(n, &format!("steps.outputs.{key}"))?;
                // Checked normalised (`/./` is `/`), kept as written: a trailing `/` on
                // `to` means "into this directory" to the copy.
                match validate::abs_path(&s.v) {
                    Ok(p) if p == "/" => {
                        self.err(
                            s.loc,
                            format!("steps.outputs.{key} is `/`"),
                            "name a directory or file, e.g. /out/static",
                        );
                        None
                    }
                    Ok(_) => Some(s.v),
                    Err(why) => {
                        self.err(
                            s.loc,
                            format!("invalid steps.outputs.{key} `{}`: {why}", s.v),
                            "use an absolute path such as /out/static",
                        );
                        None
                    }
                }
            };
            let (from, to) = (path("from"), path("to"));
            if let (Some(from), Some(to)) = (from, to) {
                out.push(StepOutput { from, to });
            }
        }
        out
    }

    fn step_dirs(&mut self, node: Option<&Node>, what: &str) -> Vec<String> {
        let Some(node) = node else { return vec![] };
        let mut out = vec![];
        for d in self.list(node, what) {
            match validate::abs_path(&d.v) {
                Ok(p) if p == "/" => self.err(
                    d.loc,
                    format!("`/` in {what}"),
                    "name the tool's cache directory, e.g. /root/.cache/huggingface",
                ),
                Ok(p) => out.push(p),
                Err(why) => self.err(
                    d.loc,
                    format!("invalid path `{}` in {what}: {why}", d.v),
                    "use an absolute directory such as /root/.cache/huggingface",
                ),
            }
        }
        out
    }
}
