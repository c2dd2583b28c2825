//! Each node's Ignition (spec 3.x, as Flatcar reads it) and its SSH host key.
