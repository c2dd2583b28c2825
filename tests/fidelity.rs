//! Fidelity: what loko renders for the examples, judged with the simulator's judge
//! (`sim::judge`) against facts taken from the real components (`sim/data/`, each with its
//! upstream source), never against loko's own constants. A failing check says which node, unit
//! or pod, which flag or setting, and why a real Flatcar node would not run it as intended.

// A test crate's root file looks for modules beside it, so each module names its file.
#[path = "fidelity/nodes.rs"]
mod nodes;
