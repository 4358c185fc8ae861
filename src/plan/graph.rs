//! The stage graph as Graphviz dot or Mermaid, for people who would rather look.

use super::{Plan, StageKind};

fn shape(kind: &StageKind) -> &'static str {
    match kind {
        StageKind::Base { .. } => "box3d",
        StageKind::Apt(_)
        | StageKind::Python(_)
        | StageKind::Install(_)
        | StageKind::Project(_)
        | StageKind::Step(_) => "box",
        StageKind::Final { .. } => "doubleoctagon",
        StageKind::Verify { .. } => "note",
    }
}

/// What a stage takes from a dependency: a builder step's outputs, else the venv.
fn dep_label(plan: &Plan, dep: usize) -> &'static str {
    match plan.stage(dep).kind {
        StageKind::Step(_) => "outputs",
        _ => "venv",
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
        for d in &s.deps {
            out.push_str(&format!(
                "  s{d} -> s{} [style=dashed, label=\"{}\"];\n",
                s.id,
                dep_label(plan, *d)
            ));
        }
    }
    out.push_str("}\n");
    out
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
        for d in &s.deps {
            out.push_str(&format!(
                "  s{d} -. {} .-> s{}\n",
                dep_label(plan, *d),
                s.id
            ));
        }
    }
    out
}
