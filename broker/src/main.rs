//! wren-broker binary (next commit).
fn main() {}
