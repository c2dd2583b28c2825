//! A DAG: the steps of a run, validated before anything runs.

use std::collections::HashMap;

use journal::StepId;
use petgraph::algo::toposort;
use petgraph::graph::{DiGraph, NodeIndex};
use serde::{Deserialize, Serialize};

use crate::step::StepDef;

/// Why a set of steps is not a runnable DAG. Found before anything runs.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum DagError {
    #[error("step {0} is defined twice")]
    Duplicate(journal::StepId),
    #[error("step {step} depends on {missing}, which is not in the DAG")]
    MissingDependency { step: StepId, missing: StepId },
    #[error("steps form a cycle through {0}")]
    Cycle(StepId),
}

/// Steps in a DAG whose edges point from a dependency to its dependents.
pub struct Dag {
    pub(crate) graph: DiGraph<StepDef, ()>,
    /// Node indexes in a topological order.
    pub(crate) order: Vec<NodeIndex>,
}

impl Dag {
    /// Builds the DAG, rejecting duplicate ids, missing dependencies and cycles.
    pub fn new(steps: Vec<StepDef>) -> Result<Dag, DagError> {
        let mut graph = DiGraph::with_capacity(steps.len(), steps.len() * 2);
        let mut index: HashMap<StepId, NodeIndex> = HashMap::with_capacity(steps.len());
        for step in steps {
            let id = step.id.clone();
            let node = graph.add_node(step);
            if index.insert(id.clone(), node).is_some() {
                return Err(DagError::Duplicate(id));
            }
        }
        let mut edges = Vec::new();
        for node in graph.node_indices() {
            let step = &graph[node];
            for dep in &step.deps {
                let from = index.get(dep).ok_or_else(|| DagError::MissingDependency {
                    step: step.id.clone(),
                    missing: dep.clone(),
                })?;
                edges.push((*from, node));
            }
        }
        for (from, to) in edges {
            graph.update_edge(from, to, ());
        }
        let order =
            toposort(&graph, None).map_err(|c| DagError::Cycle(graph[c.node_id()].id.clone()))?;
        Ok(Dag { graph, order })
    }

    /// The step ids in a topological order.
    pub fn step_ids(&self) -> Vec<StepId> {
        self.order
            .iter()
            .map(|n| self.graph[*n].id.clone())
            .collect()
    }

    /// The steps, in a topological order.
    pub fn steps(&self) -> impl Iterator<Item = &StepDef> {
        self.order.iter().map(|n| &self.graph[*n])
    }

    /// Number of steps.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True for a DAG without steps.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The steps in the order they were declared (which orders steps that become ready
    /// together, and a class's waiters).
    pub fn declared(&self) -> impl Iterator<Item = &StepDef> {
        self.graph.node_indices().map(|n| &self.graph[n])
    }

    /// The DAG in Graphviz DOT, for `loko graph`.
    pub fn to_dot(&self) -> String {
        let mut out = String::from("digraph loko {\n  rankdir=LR;\n  node [shape=box];\n");
        for n in &self.order {
            let step = &self.graph[*n];
            out.push_str(&format!("  \"{}\";\n", step.id));
            for dep in &step.deps {
                out.push_str(&format!("  \"{dep}\" -> \"{}\";\n", step.id));
            }
        }
        out.push_str("}\n");
        out
    }
}

/// A DAG serializes as its steps in declaration order, and deserializes through [`Dag::new`],
/// so a stored DAG is checked like a built one.
impl Serialize for Dag {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.declared())
    }
}

impl<'de> Deserialize<'de> for Dag {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let steps = Vec::<StepDef>::deserialize(deserializer)?;
        Dag::new(steps).map_err(serde::de::Error::custom)
    }
}
