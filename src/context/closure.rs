//! Which context files installing each requirement file reads: the file and everything
//! its `-r`/`-c` includes reach. One walk serves every root, so the work is linear in the
//! files and their distinct includes (plus a bitset per set of files that include each
//! other), however many roots name the same files; each file's problems are reported
//! once, at the first root that reaches it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::Resolved;
use crate::diag::{Diagnostic, Loc};

/// What `Gather` learned of the requirement files.
pub(super) struct Graph<'a> {
    /// Each requirement file read: its includes (line, as written, `-c`, resolved or why
    /// not).
    pub includes: &'a BTreeMap<String, Vec<Resolved>>,
    /// Files the context does not have.
    pub missing: &'a BTreeSet<String>,
    /// `.dockerignore`: a file it leaves out is not in the build's context either.
    pub ignore: &'a super::dockerignore::Matcher,
}

/// For each root (a file the spec names, where, and what it is), the files installing it
/// reads: itself first, then the others in the order a depth-first walk from the roots
/// (in spec order) first reaches them; for a single root that is its own depth-first
/// order. A missing root reaches nothing. Problems: missing roots and includes, includes
/// that leave the context. (A file's own lines were classified when it was read.)
pub(super) fn closures(
    graph: &Graph,
    roots: &[(String, Loc, &'static str)],
) -> (BTreeMap<String, Vec<String>>, Vec<Diagnostic>) {
    let mut walk = Walk::new(graph);
    for (root, loc, what) in roots {
        walk.root(root, *loc, what);
    }
    if let Some((loc, e)) = walk.too_costly {
        walk.diags.push(Diagnostic::error(
            loc,
            e.to_string(),
            "shorten .dockerignore (or the paths the spec names)",
        ));
    }
    let reach = reach(&walk.edges);
    let mut out = BTreeMap::new();
    for (root, _, _) in roots {
        if out.contains_key(root) {
            continue;
        }
        let files = match walk.id.get(root.as_str()) {
            Some(&r) => {
                let mut files = vec![root.clone()];
                files.extend(
                    ones(&reach[r])
                        .filter(|&i| i != r)
                        .map(|i| walk.files[i].to_string()),
                );
                files
            }
            None => vec![],
        };
        out.insert(root.clone(), files);
    }
    (out, walk.diags)
}

/// One depth-first walk from all roots: each file gets an id in the order first reached.
struct Walk<'a> {
    graph: &'a Graph<'a>,
    id: HashMap<&'a str, usize>,
    files: Vec<&'a str>,
    /// By id: the ids each file includes (present files only), each once.
    edges: Vec<Vec<usize>>,
    /// By id: the paths it includes, each once, to be turned into `edges`.
    targets: Vec<Vec<&'a str>>,
    roots: HashSet<(&'a str, Loc)>,
    missing_reported: HashSet<&'a str>,
    /// `.dockerignore` took too long to apply (reported once, at the end).
    too_costly: Option<(Loc, super::dockerignore::TooCostly)>,
    diags: Vec<Diagnostic>,
}

impl<'a> Walk<'a> {
    fn new(graph: &'a Graph<'a>) -> Walk<'a> {
        Walk {
            graph,
            id: HashMap::new(),
            files: vec![],
            edges: vec![],
            targets: vec![],
            roots: HashSet::new(),
            missing_reported: HashSet::new(),
            too_costly: None,
            diags: vec![],
        }
    }

    /// Why the build does not see `file` (named at `loc`), if it does not.
    fn absent(&mut self, file: &str, loc: Loc) -> Option<&'static str> {
        if self.graph.missing.contains(file) {
            return Some("is not in the build context");
        }
        match self.graph.ignore.excluded(file) {
            Ok(true) => Some("is left out by .dockerignore, so the build does not see it"),
            Ok(false) => None,
            Err(e) => {
                self.too_costly.get_or_insert((loc, e));
                None
            }
        }
    }

    fn root(&mut self, root: &'a str, loc: Loc, what: &str) {
        if !self.roots.insert((root, loc)) {
            return;
        }
        if let Some(why) = self.absent(root, loc) {
            self.diags.push(Diagnostic::error(
                loc,
                format!("{what} `{root}` {why}"),
                "check the path (relative to the build context) and that .dockerignore does not exclude it",
            ));
            return;
        }
        let mut stack: Vec<(&'a str, Option<(&'a str, u32)>)> = vec![(root, None)];
        while let Some((file, by)) = stack.pop() {
            if self.id.contains_key(file) {
                continue;
            }
            if let Some(why) = self.absent(file, loc) {
                if let Some((from, line)) = by
                    && self.missing_reported.insert(file)
                {
                    self.diags.push(Diagnostic::error(
                        loc,
                        format!("requirement file `{file}` (included at {from}:{line}) {why}"),
                        "check the include (relative to the including file) and that .dockerignore does not exclude it",
                    ));
                }
                continue;
            }
            self.id.insert(file, self.files.len());
            self.files.push(file);
            let mut targets: Vec<(&'a str, u32)> = vec![];
            let mut seen = HashSet::new();
            for (line, written, _, resolved) in self.graph.includes.get(file).into_iter().flatten()
            {
                match resolved {
                    Ok(path) => {
                        if seen.insert(path.as_str()) {
                            targets.push((path, *line));
                        }
                    }
                    Err(why) => self.diags.push(Diagnostic::error(
                        loc,
                        format!("{file}:{line} includes `{written}`: {why}"),
                        "include only files inside the build context, by a relative path",
                    )),
                }
            }
            self.targets.push(targets.iter().map(|(p, _)| *p).collect());
            for (path, line) in targets.into_iter().rev() {
                stack.push((path, Some((file, line))));
            }
        }
        // Every file reached so far has its id: its includes become edges.
        for i in self.edges.len()..self.targets.len() {
            let ids = self.targets[i]
                .iter()
                .filter_map(|p| self.id.get(p).copied())
                .collect();
            self.edges.push(ids);
        }
    }
}

/// For each node of `edges`, the set of nodes it reaches (itself included) as a bitset.
/// Tarjan's strongly connected components, as a loop: the nodes that include each other
/// share one set, and each set is its members and the sets of what they include, which
/// Tarjan finishes first.
fn reach(edges: &[Vec<usize>]) -> Vec<std::rc::Rc<Vec<u64>>> {
    const UNSEEN: usize = usize::MAX;
    let n = edges.len();
    let words = n.div_ceil(64);
    let (mut index, mut low) = (vec![UNSEEN; n], vec![0; n]);
    let mut on_stack = vec![false; n];
    let mut component = vec![UNSEEN; n];
    let mut sets: Vec<std::rc::Rc<Vec<u64>>> = vec![];
    let (mut stack, mut next) = (vec![], 0);
    for start in 0..n {
        if index[start] != UNSEEN {
            continue;
        }
        let mut calls = vec![(start, 0usize)];
        index[start] = next;
        low[start] = next;
        next += 1;
        stack.push(start);
        on_stack[start] = true;
        while let Some(&mut (v, ref mut i)) = calls.last_mut() {
            if let Some(&w) = edges[v].get(*i) {
                *i += 1;
                if index[w] == UNSEEN {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    calls.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            calls.pop();
            if let Some(&(u, _)) = calls.last() {
                low[u] = low[u].min(low[v]);
            }
            if low[v] != index[v] {
                continue;
            }
            let c = sets.len();
            let mut members = vec![];
            loop {
                let w = stack.pop().expect("v is on the stack");
                on_stack[w] = false;
                component[w] = c;
                members.push(w);
                if w == v {
                    break;
                }
            }
            let mut bits = vec![0u64; words];
            let mut merged = HashSet::new();
            for &m in &members {
                bits[m / 64] |= 1 << (m % 64);
                for &w in &edges[m] {
                    let other = component[w];
                    if other != c && merged.insert(other) {
                        for (b, o) in bits.iter_mut().zip(sets[other].iter()) {
                            *b |= o;
                        }
                    }
                }
            }
            sets.push(std::rc::Rc::new(bits));
        }
    }
    component.iter().map(|&c| sets[c].clone()).collect()
}

/// The positions of the set bits, in ascending order.
fn ones(bits: &[u64]) -> impl Iterator<Item = usize> + '_ {
    bits.iter().enumerate().flat_map(|(w, &word)| {
        (0..64)
            .filter(move |b| word & (1 << b) != 0)
            .map(move |b| w * 64 + b)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reach_follows_cycles_and_chains() {
        // 0 -> 1 -> 2 -> 1, 3 -> 0, 4 alone.
        let edges = vec![vec![1], vec![2], vec![1], vec![0], vec![]];
        let sets = reach(&edges);
        let list = |i: usize| ones(&sets[i]).collect::<Vec<_>>();
        assert_eq!(list(0), [0, 1, 2]);
        assert_eq!(list(1), [1, 2]);
        assert_eq!(list(2), [1, 2]);
        assert_eq!(list(3), [0, 1, 2, 3]);
        assert_eq!(list(4), [4]);
    }
}
