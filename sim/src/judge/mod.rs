//! Judges that hold what loko renders to facts taken from the real components, independently of
//! loko's own code.

pub mod rbac;
