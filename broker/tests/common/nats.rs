//! A NATS cluster on loopback for the scale-out tests (`nats_cluster.rs`): `n` nodes of
//! Debian's `nats-server` (2.9), each with JetStream (its store in a temporary directory), the
//! cluster's routes, an MQTT 3.1.1 listener (the streams and consumers that hold MQTT sessions
//! and retained messages replicated on every node, up to 3, so one node's death loses nothing),
//! a client port and a monitoring port, all on 127.0.0.1 and free ports. [`NatsCluster::start`]
//! returns once JetStream has a meta leader and every node's MQTT listener accepts a CONNECT;
//! a node can be killed (SIGKILL) and restarted on the same ports and store; everything is
//! killed and removed on drop. Every wait is bounded.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::TempDir;
use super::process::{Output, Running};

/// How long the cluster may take to be ready (elect a JetStream meta leader, create the MQTT
/// streams): generous, as the tests share two cores.
pub const READY: Duration = Duration::from_secs(60);

/// `n` distinct ports nothing listens on now (their listeners are all open until every port is
/// found, then closed).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// The `nats-server` binary: `$NATS_SERVER`, else on `PATH`, else Debian's `/usr/sbin`. Panics
/// saying what to install when there is none (a test never passes by skipping).
pub fn nats_server() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "NATS_SERVER={} is not a file: set it to the nats-server binary, or unset it to use \
             Debian's (`apt-get install nats-server`, as .ci/run does)",
            path.display()
        );
        return path;
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|dir| dir.join("nats-server"))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "nats-server is not installed: these tests run a NATS cluster; install Debian's \
                 package (`apt-get install nats-server`, as .ci/run does) or set NATS_SERVER to \
                 the binary"
            )
        })
}

/// The ports of one node, all on 127.0.0.1.
#[derive(Debug, Clone, Copy)]
pub struct NodePorts {
    /// NATS clients.
    pub client: u16,
    /// Routes between the nodes.
    pub cluster: u16,
    /// MQTT 3.1.1 clients.
    pub mqtt: u16,
    /// HTTP monitoring (`/jsz`, `/connz`).
    pub http: u16,
}

pub struct NatsCluster {
    /// Configuration files and JetStream stores (`n0.conf`, `n0/`...).
    dir: TempDir,
    ports: Vec<NodePorts>,
    /// The running nodes (`None`: killed).
    nodes: Vec<Option<Running>>,
}

impl NatsCluster {
    /// Write the configuration of `n` nodes (`n0`, `n1`...), start them and wait until the
    /// cluster is ready (see [`NatsCluster::wait_ready`]).
    pub fn start(n: usize) -> NatsCluster {
        assert!(n >= 1, "a cluster has at least one node");
        let binary = nats_server();
        let dir = TempDir::new("nats-cluster");
        let ports: Vec<NodePorts> = free_ports(4 * n)
            .chunks(4)
            .map(|p| NodePorts {
                client: p[0],
                cluster: p[1],
                mqtt: p[2],
                http: p[3],
            })
            .collect();
        let routes: Vec<String> = ports
            .iter()
            .map(|p| format!("nats-route://127.0.0.1:{}", p.cluster))
            .collect();
        // MQTT's streams and consumers on every node (a stream's replicas cannot exceed the
        // cluster's size; JetStream's limit is 5, 3 is the usual).
        let replicas = n.min(3);
        for (i, p) in ports.iter().enumerate() {
            let store = dir.path().join(format!("n{i}"));
            dir.write(
                &format!("n{i}.conf"),
                &format!(
                    r#"# node {i} of the test cluster (broker/tests/common/nats.rs)
server_name: n{i}
listen: 127.0.0.1:{client}
http: 127.0.0.1:{http}
jetstream {{
  store_dir: "{store}"
  max_memory_store: 64MB
  max_file_store: 1GB
}}
cluster {{
  name: wren-test
  listen: 127.0.0.1:{cluster}
  routes: [{routes}]
}}
mqtt {{
  listen: 127.0.0.1:{mqtt}
  stream_replicas: {replicas}
  consumer_replicas: {replicas}
}}
"#,
                    client = p.client,
                    http = p.http,
                    store = store.display(),
                    cluster = p.cluster,
                    routes = routes.join(", "),
                    mqtt = p.mqtt,
                ),
            );
        }
        let mut cluster = NatsCluster {
            dir,
            ports,
            nodes: (0..n).map(|_| None).collect(),
        };
        for i in 0..n {
            cluster.nodes[i] = Some(cluster.spawn(&binary, i));
        }
        cluster.wait_ready();
        cluster
    }

    fn spawn(&self, binary: &Path, i: usize) -> Running {
        let mut cmd = Command::new(binary);
        cmd.arg("-c")
            .arg(self.dir.path().join(format!("n{i}.conf")))
            .current_dir(self.dir.path());
        Running::spawn(cmd, Output::Stderr)
    }

    /// How many nodes the cluster has (running or not).
    pub fn len(&self) -> usize {
        self.ports.len()
    }

    pub fn ports(&self, i: usize) -> NodePorts {
        self.ports[i]
    }

    /// Node `i`'s MQTT port on 127.0.0.1.
    pub fn mqtt_port(&self, i: usize) -> u16 {
        self.ports[i].mqtt
    }

    /// Every node's MQTT address, in node order (`127.0.0.1:PORT`).
    pub fn mqtt_addresses(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("127.0.0.1:{}", p.mqtt))
            .collect()
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].is_some()
    }

    /// Kill node `i` with SIGKILL (no goodbye to its peers or clients) and wait for it to end.
    pub fn kill(&mut self, i: usize) {
        let node = self.nodes[i]
            .take()
            .unwrap_or_else(|| panic!("node {i} is not running"));
        // Running's drop kills (SIGKILL) and reaps the process.
        drop(node);
    }

    /// Start node `i` again (same ports, same JetStream store) and wait until the cluster is
    /// ready again.
    pub fn restart(&mut self, i: usize) {
        assert!(self.nodes[i].is_none(), "node {i} is running");
        self.nodes[i] = Some(self.spawn(&nats_server(), i));
        self.wait_ready();
    }

    /// Wait (at most [`READY`]) until every running node knows JetStream's meta leader (its
    /// `/jsz`), and every running node's MQTT listener answers a clean-session CONNECT with
    /// CONNACK 0 (which needs the MQTT streams in JetStream; the first MQTT connection of a node
    /// creates them). Panics with the nodes' logs otherwise, or when a node has exited.
    /// (`/healthz` is not asked: after a restart, 2.9 reports a consumer of the node's former
    /// incarnation "not current" for a long while although MQTT works.)
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY;
        loop {
            for (i, node) in self.nodes.iter_mut().enumerate() {
                if let Some(node) = node {
                    node.assert_running(&format!("nats-server node {i}"));
                }
            }
            let Some(why) = self.not_ready() else {
                return;
            };
            if Instant::now() >= deadline {
                let logs = self.logs();
                panic!("the NATS cluster is not ready within {READY:?}: {why}\n{logs}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Why the cluster is not ready, or `None` when it is.
    fn not_ready(&self) -> Option<String> {
        let running: Vec<usize> = (0..self.len()).filter(|&i| self.is_running(i)).collect();
        for &i in &running {
            match http_get(self.ports[i].http, "/jsz") {
                Ok(body) if body.contains("\"leader\":") => {}
                Ok(_) => return Some(format!("node {i} knows no JetStream meta leader")),
                Err(e) => return Some(format!("node {i} /jsz: {e}")),
            }
        }
        for &i in &running {
            match mqtt_connack(self.ports[i].mqtt, &format!("wren-ready-n{i}")) {
                Ok([0x20, 0x02, _, 0x00]) => {}
                Ok(answer) => return Some(format!("node {i} MQTT CONNACK {answer:02x?}")),
                Err(e) => return Some(format!("node {i} MQTT: {e}")),
            }
        }
        None
    }

    /// Which running node holds the MQTT connection of client `client_id` (its `/connz`), if
    /// any does.
    pub fn node_of_mqtt_client(&self, client_id: &str) -> Option<usize> {
        (0..self.len()).filter(|&i| self.is_running(i)).find(|&i| {
            http_get(
                self.ports[i].http,
                &format!("/connz?mqtt_client={client_id}"),
            )
            .is_ok_and(|body| body.contains(&format!("\"mqtt_client\": \"{client_id}\"")))
        })
    }

    /// Wait (bounded by `timeout`) until some running node holds client `client_id`'s MQTT
    /// connection; that node.
    pub fn wait_for_mqtt_client(&self, client_id: &str, timeout: Duration) -> Option<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.node_of_mqtt_client(client_id) {
                return Some(i);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The log lines of every node so far, for failure messages.
    pub fn logs(&mut self) -> String {
        let mut out = String::new();
        for (i, node) in self.nodes.iter_mut().enumerate() {
            match node {
                Some(node) => {
                    out.push_str(&format!("--- node {i} ---\n"));
                    for line in node.drain() {
                        out.push_str(line);
                        out.push('\n');
                    }
                }
                None => out.push_str(&format!("--- node {i}: not running ---\n")),
            }
        }
        out
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        // Every node killed (Running's drop) before the directory is removed (TempDir's drop).
        self.nodes.clear();
    }
}

/// `GET path` from the monitoring port 127.0.0.1:`port`: the body.
pub fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    let timeout = Duration::from_secs(2);
    let mut tcp = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), timeout)?;
    tcp.set_read_timeout(Some(timeout))?;
    tcp.set_write_timeout(Some(timeout))?;
    write!(
        tcp,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    tcp.read_to_string(&mut answer)?;
    Ok(answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or(answer))
}

/// A raw MQTT 3.1.1 clean-session CONNECT (keep-alive 60 s, client id `id`) to
/// 127.0.0.1:`port`: the CONNACK's four bytes (`20 02 00 00` when accepted); errors rather than
/// panics, for polling. The connection is closed without a DISCONNECT.
pub fn mqtt_connack(port: u16, id: &str) -> std::io::Result<[u8; 4]> {
    let timeout = Duration::from_secs(5);
    let mut tcp = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), timeout)?;
    tcp.set_read_timeout(Some(timeout))?;
    tcp.set_write_timeout(Some(timeout))?;
    let mut connect = vec![0x10, (12 + id.len()) as u8, 0, 4];
    connect.extend_from_slice(b"MQTT");
    connect.extend_from_slice(&[4, 0x02, 0, 60, 0, id.len() as u8]);
    connect.extend_from_slice(id.as_bytes());
    tcp.write_all(&connect)?;
    let mut answer = [0u8; 4];
    tcp.read_exact(&mut answer)?;
    Ok(answer)
}
