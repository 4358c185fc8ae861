//! The stage graph as Graphviz dot or Mermaid, for people who would rather look.

use super::{Plan, StageKind};

fn shape(kind: &StageKind) -> &'static str {
    match kind {
        StageKind::Base { .. } => "box3d",
        StageKind::Fetch(_) => "cylinder",
        StageKind::Apt(_)
        | StageKind::Python(_)
        | StageKind::Install(_)
        | StageKind::Wheel(_)
        | StageKind::Layer(_)
        | StageKind::ProjectWheel(_)
        | StageKind::Project(_)
        | StageKind::RuntimePackages(_)
        | StageKind::Step(_) => "box",
        StageKind::Final { .. } => "doubleoctagon",
        StageKind::Verify { .. }
        | StageKind::Check(_)
        | StageKind::ProjectCheck(_)
        | StageKind::RuntimeCheck(_) => "note",
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

pub fn dot(plan: &Plan) -> String {
    let mut out =
        String::from("digraph kiln {\n  rankdir=LR;\n  node [fontname=\"sans-serif\"];\n");
    for s in &plan.stages {
        out.push_str(&format!(
            "  s{} [label=\"{}\", shape={}];\n",
            s.id,
            escape(&s.label()),
            shape(&s.kind)
        ));
    }
    for s in &plan.stages {
        if let Some(p) = s.parent {
            out.push_str(&format!("  s{p} -> s{};\n", s.id));
        }
        for (role, d) in &s.inputs {
            out.push_str(&format!(
                "  s{d} -> s{} [style=dashed, label=\"{}\"];\n",
                s.id,
                role.label()
            ));
        }
    }
    for (gate, image) in gates(plan) {
        out.push_str(&format!(
            "  s{gate} -> s{image} [style=dotted, label=\"gates\"];\n"
        ));
    }
    out.push_str("}\n");
    out
}

/// Each check and the image it gates: not an input (the image does not wait for it), the
/// frontend solves it beside the image and returns the image only when it passed.
fn gates(plan: &Plan) -> impl Iterator<Item = (usize, usize)> + '_ {
    plan.targets
        .iter()
        .flat_map(|t| t.gates.iter().map(move |g| (*g, t.image)))
}

pub fn mermaid(plan: &Plan) -> String {
    let mut out = String::from("flowchart LR\n");
    for s in &plan.stages {
        let label = s.label().replace('"', "'");
        out.push_str(&format!("  s{}[\"{}\"]\n", s.id, label));
    }
    for s in &plan.stages {
        if let Some(p) = s.parent {
            out.push_str(&format!("  s{p} --> s{}\n", s.id));
        }
        for (role, d) in &s.inputs {
            out.push_str(&format!("  s{d} -. {} .-> s{}\n", role.label(), s.id));
        }
    }
    for (gate, image) in gates(plan) {
        out.push_str(&format!("  s{gate} -. gates .-> s{image}\n"));
    }
    out
}
