//! The command line and the commands besides serving (`retention`).

pub mod cli;
pub mod retention;
