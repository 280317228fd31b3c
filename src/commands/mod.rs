//! The command line and the commands besides serving (`retention`, `probe`).

pub mod cli;
pub mod probe;
pub mod retention;
