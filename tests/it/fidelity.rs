//! The fidelity suite: what loko renders for the examples, judged with the simulator's judges
//! (`sim::judge`) against facts taken from the real components (`sim/data/`, each with its
//! upstream source, and `shared/reference/upstream/`), never against loko's own code. A failing
//! check says which node, unit, pod or identity, which flag or setting, and why a real cluster
//! would not work as intended.

mod calico;
mod kubelet;
mod network;
mod nodes;
mod rbac;
