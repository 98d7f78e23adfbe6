//! Runtime shell (next commit).
#[derive(Debug)]
pub struct Server;
#[derive(Debug)]
pub struct ServerHandle;
